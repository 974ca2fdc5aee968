"""Contrastive losses: modules over pure functions (`functional` and each loss's own file)."""

from orbitcl.losses import functional
from orbitcl.losses.align_uniform import AlignUniformLoss
from orbitcl.losses.dcl import DCLLoss, DCLWLoss
from orbitcl.losses.debiased import DebiasedContrastiveLoss
from orbitcl.losses.hard_negative import HardNegativeLoss
from orbitcl.losses.margin import MarginContrastiveLoss
from orbitcl.losses.moco import MoCoLoss
from orbitcl.losses.ntxent import NTXentLoss
from orbitcl.losses.orl import ORLLoss
from orbitcl.losses.orl_mean_tension import ORLMeanTensionLoss
from orbitcl.losses.orl_shuffled_tension import ORLShuffledTensionLoss
from orbitcl.losses.supcon import SupConLoss
from orbitcl.losses.triplet import TripletSemiHardLoss
from orbitcl.losses.vrn import VRNLoss

__all__ = [
    "AlignUniformLoss",
    "DCLLoss",
    "DCLWLoss",
    "DebiasedContrastiveLoss",
    "HardNegativeLoss",
    "MarginContrastiveLoss",
    "MoCoLoss",
    "NTXentLoss",
    "ORLLoss",
    "ORLMeanTensionLoss",
    "ORLShuffledTensionLoss",
    "SupConLoss",
    "TripletSemiHardLoss",
    "VRNLoss",
    "functional",
]

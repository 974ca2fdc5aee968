"""Contrastive losses: modules over pure functions (`functional` and each loss's own file)."""

from orbitcl.losses import functional
from orbitcl.losses.align_uniform import AlignUniformLoss
from orbitcl.losses.barlow_twins import BarlowTwinsLoss
from orbitcl.losses.byol import BYOLLoss
from orbitcl.losses.dcl import DCLLoss, DCLWLoss
from orbitcl.losses.debiased import DebiasedContrastiveLoss
from orbitcl.losses.hard_negative import HardNegativeLoss
from orbitcl.losses.lifted import LiftedStructuredClassLoss, LiftedStructuredLoss
from orbitcl.losses.margin import MarginContrastiveLoss
from orbitcl.losses.moco import MoCoLoss
from orbitcl.losses.npair import NPairClassLoss, NPairLoss
from orbitcl.losses.ntxent import NTXentLoss
from orbitcl.losses.orl import ORLLoss
from orbitcl.losses.orl_mean_tension import ORLMeanTensionLoss
from orbitcl.losses.orl_shuffled_tension import ORLShuffledTensionLoss
from orbitcl.losses.simsiam import SimSiamLoss
from orbitcl.losses.supcon import SoftSupConLoss, SupConLoss
from orbitcl.losses.triplet import TripletSemiHardLoss
from orbitcl.losses.vicreg import VICRegLoss
from orbitcl.losses.vrn import VRNLoss
from orbitcl.losses.weighted import weighted_info_nce
from orbitcl.losses.xclr import XCLRLoss
from orbitcl.losses.y_aware import YAwareLoss

__all__ = [
    "AlignUniformLoss",
    "BarlowTwinsLoss",
    "BYOLLoss",
    "DCLLoss",
    "DCLWLoss",
    "DebiasedContrastiveLoss",
    "HardNegativeLoss",
    "LiftedStructuredClassLoss",
    "LiftedStructuredLoss",
    "MarginContrastiveLoss",
    "MoCoLoss",
    "NPairClassLoss",
    "NPairLoss",
    "NTXentLoss",
    "ORLLoss",
    "ORLMeanTensionLoss",
    "ORLShuffledTensionLoss",
    "SimSiamLoss",
    "SoftSupConLoss",
    "SupConLoss",
    "TripletSemiHardLoss",
    "VICRegLoss",
    "VRNLoss",
    "XCLRLoss",
    "YAwareLoss",
    "functional",
    "weighted_info_nce",
]

"""Contrastive losses: modules over the pure functions of `orbitcl.losses.functional`."""

from orbitcl.losses import functional
from orbitcl.losses.ntxent import NTXentLoss
from orbitcl.losses.orl import ORLLoss

__all__ = ["NTXentLoss", "ORLLoss", "functional"]

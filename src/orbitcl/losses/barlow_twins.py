"""Barlow Twins: the cross-correlation of two views' batch-standardised embeddings pushed to the
identity.

Zbontar, Jing, Misra, LeCun and Deny, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", ICML 2021.
"""

import math
from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.checks.numbers import require_in, require_number
from orbitcl.losses.base import ContrastiveLoss
from orbitcl.losses.vicreg import at_least_float32, off_diagonal


def standardised(z: Tensor, eps: float) -> Tensor:
    """Each column of z (N, d) at mean 0 and variance 1 over the batch: ``(z - mean) /
    sqrt(Var + eps)``, Var biased (over N), as ``BatchNorm1d(affine=False)`` in training."""
    var, mean = torch.var_mean(z, dim=0, correction=0)  # (d,), (d,)
    return (z - mean) / (var + eps).sqrt()


def cross_correlation(z_a: Tensor, z_b: Tensor, eps: float = 1e-5) -> Tensor:
    """``C = standardised(z_a)^T standardised(z_b) / N``, (d, d): the batch's cross-correlation."""
    return standardised(z_a, eps).T @ standardised(z_b, eps) / len(z_a)


def barlow_twins(z_a: Tensor, z_b: Tensor, lambda_: float = 5e-3, eps: float = 1e-5) -> Tensor:
    """``sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2``, C = ``cross_correlation(z_a, z_b)``
    of embeddings (N, d), N >= 2. float32 at least."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape or len(z_a) < 2:
        raise ValueError(
            "Barlow Twins needs two views of the same shape (N, d) with N >= 2 (batch "
            f"statistics), got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    z_a, z_b = at_least_float32(z_a, z_b)
    c = cross_correlation(z_a, z_b, eps)
    return (1 - c.diagonal()).square().sum() + lambda_ * off_diagonal(c).square().sum()


class BarlowTwinsLoss(ContrastiveLoss):
    """Barlow Twins (Zbontar et al., ICML 2021): invariance on the diagonal of the views'
    cross-correlation, redundancy reduction off it, weighted by ``lambda_`` (5e-3 by default).

    How lambda scales with d: the diagonal term has d entries and the off-diagonal one d(d - 1).
    Near the optimum each off-diagonal C_ij is sampling noise of size ~1/sqrt(N), so the
    redundancy term grows as lambda d^2 / N against an invariance term of order d: its relative
    weight grows as lambda d. The paper's 5e-3 is for its 8192-wide projector; keeping its
    balance at width d means lambda ~ 5e-3 * 8192 / d (0.32 at d = 128, the conv_small
    projector); Tsai et al. 2021 ("A Note on Connecting Barlow Twins with Negative-Sample-Free
    Contrastive Learning") propose 1/d. The default keeps the paper's value, as the issue asks;
    set ``loss.lambda_`` to scale it.

    Conventions: the batch standardisation is ``BatchNorm1d(affine=False)``'s, biased variance,
    eps 1e-5, as in the authors' code and lightly's ``BarlowTwinsLoss`` (equal in one process,
    float64, to rounding). The authors' first release also multiplied the loss by a
    ``scale_loss`` of 1/32 (later removed); this is the paper's formula without it. Under DDP
    (``gather_distributed``) the views of all ranks are gathered and every rank standardises
    with the **global** batch's means and variances, so W ranks equal one process. lightly
    instead standardises each rank's batch with its own statistics and averages the ranks'
    matrices C, which is not the one-process C (the test shows the gap is exactly that).
    """

    paper: ClassVar[str] = (
        "Zbontar, Jing, Misra, LeCun and Deny 2021, Barlow Twins: Self-Supervised Learning via "
        "Redundancy Reduction"
    )
    formula: ClassVar[str] = "orbitcl.losses.barlow_twins.barlow_twins"
    contrasts_negatives: ClassVar[bool] = False  # two views' statistics, no negatives

    def __init__(
        self, lambda_: float = 5e-3, eps: float = 1e-5, gather_distributed: bool = False
    ) -> None:
        super().__init__(gather_distributed)
        require_number("lambda_", lambda_, 0)
        require_in("eps", eps, 0, math.inf, "()")
        self.lambda_ = lambda_
        self.eps = eps

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        # The global batch's loss on every rank: the standardisation is over the whole batch.
        return barlow_twins(z_a, z_b, self.lambda_, self.eps)

"""Alignment and uniformity on the hypersphere (Wang and Isola 2020) as a loss module."""

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss


def check_align_uniform(lam: float, t: float, alpha: float) -> None:
    """Raise ValueError unless lam >= 0, t > 0 and alpha > 0 (`not` also rejects NaN)."""
    if not lam >= 0:
        raise ValueError(f"lam={lam} is invalid: must be >= 0")
    if not t > 0:
        raise ValueError(f"t={t} is invalid: must be > 0")
    if not alpha > 0:
        raise ValueError(f"alpha={alpha} is invalid: must be > 0")


def alignment(z_a: Tensor, z_b: Tensor, alpha: float = 2.0, images: slice | None = None) -> Tensor:
    """``mean_i ||z_a_i - z_b_i||^alpha`` on unit vectors, over the images of ``images``: Wang
    and Isola's alignment over positive pairs, rows of z_a and z_b (P, d); a scalar in
    [0, 2^alpha], 0 when every pair coincides. Lower is better. Also the metric
    (``orbitcl.metrics.geometry``)."""
    z = kernels.unit_anchors(z_a, z_b, 1, "alignment")
    z_rows, _ = kernels.anchor_rows(z, images)
    n = len(z_rows) // 2
    sq_dist = (z_rows[:n] - z_rows[n:]).square().sum(1)  # (n,), from the vectors: exact near 0
    # A pair of identical views has gradient 0 (the limit for alpha > 1), not 0 * inf = NaN.
    same = sq_dist == 0
    powered = torch.where(same, 1.0, sq_dist).pow(alpha / 2)
    return torch.where(same, 0.0, powered).mean()


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """``log mean_{i != j} exp(-t ||x_i - x_j||^2)`` over the pairs of unit rows of ``x`` (M, d),
    M >= 2 (each unordered pair twice, which leaves the mean unchanged). Also the metric
    (``orbitcl.metrics.geometry``).

    Lower is more uniform. For unit vectors ``E||x - y||^2`` over distinct pairs is
    ``2M/(M-1) (1 - ||mean||^2)``, so by Jensen the value is at least ``-2t M/(M-1)``: -4 for
    t = 2 as M grows, attained by a regular simplex (mean 0, all distances equal). A
    log-sum-exp: no underflow to log(0) however large t and the distances are.
    """
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must have shape (M, d) with M >= 2, got {tuple(x.shape)}")
    x = F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=1)  # float32 at least
    gram = kernels.gram_rows(x, x)  # (M, M)
    sq_norm = x.square().sum(1)  # (M,): 1 but for all-zero rows
    sq_dist = sq_norm[:, None] + sq_norm - 2 * gram  # (M, M): no sqrt, so no NaN gradient at 0
    logits = sq_dist.mul(-t).fill_diagonal_(float("-inf"))  # i = j is not a pair
    m = len(x)
    return logits.flatten().logsumexp(0) - math.log(m * (m - 1))


def align_uniform(
    z_a: Tensor,
    z_b: Tensor,
    lam: float = 1.0,
    t: float = 2.0,
    alpha: float = 2.0,
    images: slice | None = None,
) -> Tensor:
    """``alignment(alpha) + lam * (uniformity(z_a, t) + uniformity(z_b, t)) / 2``.

    With ``images``, the alignment is the mean over those images' pairs and the uniformity is
    that of the whole batch: the uniformity is a log of a mean over all pairs, which does not
    split into per-image terms, so a DDP rank computes it whole (see ``AlignUniformLoss``).
    """
    check_align_uniform(lam, t, alpha)
    align = alignment(z_a, z_b, alpha, images)
    return align + lam * (uniformity(z_a, t) + uniformity(z_b, t)) / 2


class AlignUniformLoss(ContrastiveLoss):
    """Alignment plus uniformity (Wang and Isola, "Understanding Contrastive Representation
    Learning through Alignment and Uniformity on the Hypersphere", ICML 2020), on unit vectors:

    ``L = mean_i ||z_a_i - z_b_i||^alpha + lam * (U(z_a) + U(z_b)) / 2``, with the uniformity
    ``U(x) = log mean_{i < j} exp(-t ||x_i - x_j||^2)`` over the pairs of one view (as their code,
    ``torch.pdist(x).pow(2).mul(-t).exp().mean().log()``). Defaults are theirs: t = alpha = 2.

    Under DDP (``gather_distributed``) a rank's loss is the alignment of its own images plus
    ``lam`` times the uniformity of the whole gathered batch (every rank the same): the
    alignment is a mean over images and splits evenly among ranks, the uniformity, the log of a
    mean over all pairs, does not, so every rank computes it whole. The mean of the ranks'
    losses is then exactly the global loss, and so is the gradient (``orbitcl.losses.gather``);
    the price is that each rank computes the two (N, N) Gram matrices of the global batch.
    """

    paper: ClassVar[str] = (
        "Wang and Isola 2020, Understanding Contrastive Representation Learning through "
        "Alignment and Uniformity on the Hypersphere (ICML)"
    )
    formula: ClassVar[str] = "orbitcl.losses.align_uniform.align_uniform"

    def __init__(
        self,
        lam: float = 1.0,
        t: float = 2.0,
        alpha: float = 2.0,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        check_align_uniform(lam, t, alpha)
        self.lam = lam
        self.t = t
        self.alpha = alpha

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return align_uniform(z_a, z_b, self.lam, self.t, self.alpha, images)

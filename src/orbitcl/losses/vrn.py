"""VRN, the variance reduction for negative-pair similarity of Lee et al. 2025, as a module."""

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss, Needs


def check_target(target: float) -> None:
    """Raise ValueError unless target is a cosine, in [-1, 1]."""
    if not -1 <= target <= 1:  # `not` also rejects NaN
        raise ValueError(f"target={target} is invalid: must be in [-1, 1] (a cosine similarity)")


def uniform_target(train_set_size: int) -> float:
    """``-1 / (k - 1)``: the cosine of every pair of k unit vectors spread as a regular simplex,
    the negative-pair similarity at the full-batch optimum (Lee et al. 2025)."""
    if not train_set_size >= 2:
        raise ValueError(f"train_set_size={train_set_size} is invalid: must be >= 2")
    return -1.0 / (train_set_size - 1)


def vrn(z_a: Tensor, z_b: Tensor, target: float, images: slice | None = None) -> Tensor:
    """``mean_{i != j} (cos(z_a_i, z_b_j) - target)^2`` over the cross-view negative pairs whose
    first image is in ``images`` (default: all N (N - 1) pairs)."""
    check_target(target)
    z = kernels.unit_anchors(z_a, z_b, 2, "VRN (at least one negative pair)")
    z_rows, cols = kernels.anchor_rows(z, images)
    n, n_all = len(z_rows) // 2, len(z_a)
    # (n, N): views a of the images against all views b
    cos = kernels.gram_rows(z_rows[:n], z[n_all:])
    negative = torch.ones_like(cos, dtype=torch.bool)
    negative[torch.arange(n, device=z.device), cols[:n]] = False  # (i, i): positive pairs
    # A masked sum over the n (N - 1) negatives, a count known here: cos[negative] would size
    # its output on the host (a device sync, in the forward and in the backward).
    squares = torch.where(negative, (cos - target).square(), 0.0)
    return squares.sum() / (n * (n_all - 1))


class VRNLoss(ContrastiveLoss):
    """Variance reduction for negative-pair similarity (Lee, Lim, Lee and Sohn, "On the
    Similarities of Embeddings in Contrastive Learning", ICML 2025), an auxiliary term:

    ``L = mean_{i != j} (cos(z_a_i, z_b_j) - target)^2`` over the cross-view negative pairs, as in
    the authors' code (``(similarity[neg_mask] - delta).pow(2).mean()``, rows of view a against
    columns of view b). At the full-batch optimum every negative pair of a training set of k
    images has cosine ``-1/(k-1)`` (their full-batch analysis); a mini-batch loss separates the
    negatives in a batch more, and more unevenly, and VRN pulls their similarities back to that
    value, reducing their variance.

    ``target`` defaults (None) to ``-1/(k-1)`` with k the training-set size, which
    ``ContrastiveModule`` sets as ``train_set_size`` when training starts; a given ``target``
    wins. The authors weigh it by lambda = 30 against SimCLR's loss (``conf/aux/vrn.yaml``).

    Under DDP (``gather_distributed``) a rank takes the mean over the pairs of its own images'
    views a against the gathered views b; every rank has as many pairs, so the mean of the
    ranks' losses is the global loss (the authors' code gathers likewise).
    """

    needs = Needs(train_set_size=True)

    def __init__(self, target: float | None = None, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        if target is not None:
            check_target(target)
        self.target = target
        self.train_set_size: int | None = None  # k, set by ContrastiveModule before training

    def resolved_target(self) -> float:
        """``target``, else ``-1/(k-1)`` for ``train_set_size`` k."""
        if self.target is not None:
            return self.target
        if self.train_set_size is None:
            raise ValueError(
                "VRNLoss needs a target, or the training-set size k for its default -1/(k-1): "
                "set target, or train_set_size (ContrastiveModule sets it when training starts)"
            )
        return uniform_target(self.train_set_size)

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return vrn(z_a, z_b, self.resolved_target(), images)

"""Weighted InfoNCE: one core under SupCon, Soft SupCon, y-Aware and X-CLR (geometry.md).

Over the 2N anchors ``z = normalize(cat([z_a, z_b]))`` with ``s_ij = z_i . z_j`` and
``p_ij = exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)``:

    L_W = (1 / 2N) sum_i sum_{j != i} W_ij (-log p_ij)

for weights ``W`` (2N, 2N) with ``W_ij >= 0``, ``W_ii = 0`` and every row summing to 1. By Gibbs'
inequality ``L_W >= H(W) = -(1/2N) sum_ij W_ij log W_ij``, with equality exactly when ``P = W``:
the weights decide the geometry a loss aims for. NT-Xent is ``W_ij = 1[j = p(i)]``.

The core runs on the blocked kernels of NT-Xent (``kernels.blocked``): the weights take the place
of the one-hot positive, in the forward (``sum_j W_ij s_ij / tau``) and the backward
(``P - W``); no gradient flows into W. Each weighting is a small module over it, building W from
the batch's labels (gathered under DDP by ``ContrastiveLoss``).
"""

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss, Needs
from orbitcl.losses.functional import check_temperature

ROW_SUM_TOLERANCE = 1e-6  # relative: rows built in float32 sum to 1 within a few eps


def check_weights(weights: Tensor, n_anchors: int) -> None:
    """Raise ValueError unless ``weights`` is (2N, 2N), non-negative, zero on the diagonal, with
    rows summing to 1."""
    if weights.shape != (n_anchors, n_anchors):
        raise ValueError(
            f"weights must have shape (2N, 2N) = ({n_anchors}, {n_anchors}), "
            f"got {tuple(weights.shape)}"
        )
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("weights is invalid: every entry must be finite and >= 0")
    if weights.diagonal().any():
        raise ValueError("weights is invalid: the diagonal (an anchor with itself) must be 0")
    rows = weights.sum(1, dtype=torch.float64)
    if ((rows - 1).abs() > ROW_SUM_TOLERANCE).any():
        worst = rows[(rows - 1).abs().argmax()].item()
        raise ValueError(f"weights is invalid: every row must sum to 1 (one sums to {worst})")


def weighted_info_nce(
    z_a: Tensor,
    z_b: Tensor,
    weights: Tensor,
    temperature: float,
    images: slice | None = None,
    validate: bool = True,
) -> Tensor:
    """``L_W`` over the anchors of ``images`` (default: all 2N), ``weights`` (2N, 2N) over all
    anchors ``[z_a; z_b]``; float32 at least, like the other losses. ``validate=False`` skips
    ``check_weights`` (four passes over W) for weights valid by construction (the modules')."""
    check_temperature(temperature)
    z = kernels.unit_anchors(z_a, z_b, 1, "weighted InfoNCE")
    if validate:
        check_weights(weights, len(z))
    z_rows, cols = kernels.anchor_rows(z, images)
    targets = weights.detach().to(z.dtype)
    if images is not None:
        targets = targets[cols]  # (2n, 2N): the rows of this process's anchors
    hyper = kernels.Hyper(temperature, 1.0, 0.0, tension=False, through_t=False)
    return kernels.BlockedInfoNCE.apply(z_rows, z, cols, hyper, targets)


def weight_entropy(weights: Tensor) -> Tensor:
    """``H(W) = -(1/2N) sum_ij W_ij log W_ij`` (0 log 0 = 0): the lower bound of ``L_W``."""
    w = weights.to(torch.float64)
    return -torch.xlogy(w, w).sum() / len(w)


def normalised_rows(affinity: Tensor) -> Tensor:
    """``affinity`` (2N, 2N) >= 0 with its diagonal zeroed and each row divided by its sum, in
    place (callers pass a matrix of their own)."""
    affinity.fill_diagonal_(0.0)
    return affinity.div_(affinity.sum(1, keepdim=True))


def same_label(labels: Tensor) -> Tensor:
    """(2N, 2N) bool: anchors i and j carry the same label; labels (N,) are repeated per view."""
    anchor_labels = labels.repeat(2)
    return anchor_labels[:, None] == anchor_labels[None, :]


def check_class_labels(labels: Tensor, n: int, loss: str) -> None:
    """Raise ValueError unless ``labels`` are N integer class labels."""
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise ValueError(
            f"{loss} needs integer class labels, got {labels.dtype} (continuous labels are "
            "y-Aware's: loss=y_aware)"
        )


class WeightedInfoNCELoss(ContrastiveLoss):
    """A weighted InfoNCE loss: subclasses check the labels of the N images (``check_labels``) and
    build ``weights(labels)`` (2N, 2N) from them; the loss is ``weighted_info_nce`` of those."""

    needs = Needs(labels=True)

    def __init__(self, temperature: float, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        self.temperature = temperature

    def check_labels(self, labels: Tensor, n: int) -> None:
        check_class_labels(labels, n, self.__class__.__name__)

    def weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        raise NotImplementedError

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None, labels: Tensor) -> Tensor:
        self.check_labels(labels, len(z_a))
        dtype = torch.promote_types(z_a.dtype, torch.float32)  # the anchors' (unit_anchors)
        weights = self.weights(labels.to(z_a.device), dtype)
        return weighted_info_nce(z_a, z_b, weights, self.temperature, images, validate=False)

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
the batch's labels (gathered under DDP by ``ContrastiveLoss``) in the form the kernels apply
fastest (``weight_forms``): by class for SupCon, Soft SupCon and X-CLR (no (2N, 2N) matrix at
all), by low-rank logits for y-Aware (each block computed where the kernels need it).
"""

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss, Needs
from orbitcl.losses.functional import check_temperature
from orbitcl.losses.weight_forms import ClassWeights, LogitWeights, check_weights


def weighted_info_nce(
    z_a: Tensor,
    z_b: Tensor,
    weights: Tensor | ClassWeights | LogitWeights,
    temperature: float,
    images: slice | None = None,
    validate: bool = True,
) -> Tensor:
    """``L_W`` over the anchors of ``images`` (default: all 2N), ``weights`` (2N, 2N) over all
    anchors ``[z_a; z_b]``, or one of the forms that spare the kernels passes over a dense W
    (``weight_forms``); float32 at least, like the other losses. ``validate=False`` skips the
    check of the weights (passes over a dense W) for weights valid by construction (the
    modules')."""
    check_temperature(temperature)
    z = kernels.unit_anchors(z_a, z_b, 1, "weighted InfoNCE")
    if validate:
        if isinstance(weights, Tensor):
            check_weights(weights, len(z))
        else:
            weights.check(len(z))
    z_rows, cols = kernels.anchor_rows(z, images)
    rows = slice(None) if images is None else cols  # this process's anchors' rows
    if isinstance(weights, ClassWeights):
        y = weights.classes.to(z.device).repeat(2)
        affinity = weights.affinity.detach().to(z.device, z.dtype)
        targets = kernels.ClassTargets(y, affinity, cols)
    elif isinstance(weights, LogitWeights):
        left, right = (x.detach().to(z.device, z.dtype) for x in (weights.left, weights.right))
        targets = kernels.LogitTargets(left[rows], right)
    else:
        targets = weights.detach().to(z.dtype)[rows]  # (2n, 2N)
    hyper = kernels.Hyper(temperature, 1.0, 0.0, tension=False, through_t=False)
    return kernels.BlockedInfoNCE.apply(z_rows, z, cols, hyper, targets)


def weight_entropy(weights: Tensor) -> Tensor:
    """``H(W) = -(1/2N) sum_ij W_ij log W_ij`` (0 log 0 = 0): the lower bound of ``L_W``."""
    w = weights.to(torch.float64)
    return -torch.xlogy(w, w).sum() / len(w)


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
    build their weights (``kernel_weights``); the loss is ``weighted_info_nce`` of those."""

    needs = Needs(labels=True)

    def __init__(self, temperature: float, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        self.temperature = temperature

    def check_labels(self, labels: Tensor, n: int) -> None:
        check_class_labels(labels, n, self.__class__.__name__)

    def kernel_weights(self, labels: Tensor, dtype: torch.dtype) -> ClassWeights | LogitWeights:
        """The weights of the labels in the form the kernels apply fastest (``weight_forms``)."""
        raise NotImplementedError

    def weights(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        """The (2N, 2N) matrix W of the labels, e.g. for ``weight_entropy``."""
        return self.kernel_weights(labels, dtype).dense(dtype)

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None, labels: Tensor) -> Tensor:
        self.check_labels(labels, len(z_a))
        dtype = torch.promote_types(z_a.dtype, torch.float32)  # the anchors' (unit_anchors)
        weights = self.kernel_weights(labels.to(z_a.device), dtype)
        return weighted_info_nce(z_a, z_b, weights, self.temperature, images, validate=False)

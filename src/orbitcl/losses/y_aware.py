"""y-Aware InfoNCE (Dufumier et al., MICCAI 2021) on continuous labels, a weighting of the
weighted InfoNCE core (``losses.weighted``, geometry.md)."""

from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.losses.base import Needs
from orbitcl.losses.weight_forms import LogitWeights
from orbitcl.losses.weighted import WeightedInfoNCELoss


def y_aware_kernel_weights(
    labels: Tensor, sigma: float, dtype: torch.dtype = torch.float32
) -> LogitWeights:
    """``w_ij = exp(-||y_i - y_j||^2 / (2 sigma^2))`` for ``j != i``, rows normalised, over the 2N
    anchors, as low-rank logits; ``labels`` (N,) or (N, m) floats, repeated per view. (The
    authors' code normalises by column sums through numpy broadcasting: a bug, not the method;
    geometry.md.)"""
    y = labels.reshape(len(labels), -1).to(torch.promote_types(labels.dtype, dtype))
    y = y - y.mean(0)  # distances do not change; smaller norms round less below
    y = y.repeat(2, 1)  # (2N, m): the labels of [z_a; z_b]
    half_sq = y.square().sum(1, keepdim=True) / 2  # ||y_i||^2 / 2
    # -||y_i - y_j||^2 / 2 = y_i . y_j - ||y_i||^2 / 2 - ||y_j||^2 / 2: logits of rank m + 2. They
    # are <= 0 up to rounding, and 0 at i's other view (same label): every row's largest term is
    # about exp(0) = 1, so no row sum underflows and none overflows.
    ones = torch.ones_like(half_sq)
    left = torch.cat([y, -half_sq, -ones], 1).div_(sigma**2)
    return LogitWeights(left, torch.cat([y, ones, half_sq], 1))


def y_aware_weights(labels: Tensor, sigma: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """y-Aware's (2N, 2N) weights (``y_aware_kernel_weights``)."""
    return y_aware_kernel_weights(labels, sigma, dtype).dense(dtype)


class YAwareLoss(WeightedInfoNCELoss):
    """y-Aware InfoNCE: every pair of anchors attracts in proportion to a Gaussian kernel of the
    distance of their continuous labels (``sigma`` its standard deviation): ``y_aware_weights``.
    Labels on a sphere (an angle as ``(cos, sin)``) let it reach its optimum ``L = H(W)``; labels
    on a line in few dimensions do not (geometry.md)."""

    paper: ClassVar[str] = (
        "Dufumier et al. 2021, Contrastive Learning with Continuous Proxy Meta-Data for 3D MRI "
        "Classification (MICCAI)"
    )
    formula: ClassVar[str] = "orbitcl.losses.y_aware.y_aware_kernel_weights"

    needs = Needs(labels=True, continuous_labels=True)

    def __init__(
        self, temperature: float = 0.1, sigma: float = 1.0, gather_distributed: bool = False
    ) -> None:
        super().__init__(temperature, gather_distributed)
        if not sigma > 0:
            raise ValueError(f"sigma={sigma} is invalid: must be > 0")
        self.sigma = sigma

    def check_labels(self, labels: Tensor, n: int) -> None:
        if labels.ndim not in (1, 2) or len(labels) != n:
            raise ValueError(
                f"labels must have shape (N,) or (N, m) with N = {n}, got {tuple(labels.shape)}"
            )
        if not labels.is_floating_point():
            raise ValueError(
                f"YAwareLoss needs continuous (float) labels, got {labels.dtype}: class labels "
                "are SupCon's or Soft SupCon's (a dataset with a continuous attribute, e.g. "
                "dataset=rotated_mnist, gives them)"
            )

    def kernel_weights(self, labels: Tensor, dtype: torch.dtype) -> LogitWeights:
        return y_aware_kernel_weights(labels, self.sigma, dtype)

"""The forms in which weighted InfoNCE takes its weights W (2N, 2N), rows summing to 1, zero
diagonal (``losses.weighted``): a dense matrix, or one of two forms that spare the kernels
passes over it.

- ``ClassWeights``: W set by the anchors' classes through a class affinity F (C, C) (SupCon,
  Soft SupCon, X-CLR); the kernels apply it through class sums, never as a matrix
  (``kernels.targets.ClassTargets``).
- ``LogitWeights``: W the row-normalised ``exp(left right^T)`` of low-rank logits (y-Aware's
  Gaussian kernel of labels in a few dimensions): the kernels compute each block of it where
  they need it, in a reused buffer, and never keep a (2N, 2N) matrix
  (``kernels.targets.LogitTargets``).

Each has ``dense(dtype)``, the matrix W (for ``weight_entropy``, tests and checks), and
``check(n_anchors)``.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

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


@dataclass
class ClassWeights:
    """Weights set by the anchors' classes: ``W_ij = F[y_i, y_j] / Z_i`` for ``j != i``, with
    ``Z_i = sum_{k != i} F[y_i, y_k]``; ``classes`` (N,) the images' class indices in ``[0, C)``
    (repeated per view), ``affinity`` F (C, C), finite and >= 0, with ``F[c, c] > 0`` for every
    class in the batch (so that ``Z_i > 0``: i's other view is of its class). SupCon, Soft SupCon
    and X-CLR are such weights; the kernels apply them through class sums
    (``kernels.targets.ClassTargets``), never as a (2N, 2N) matrix."""

    classes: Tensor
    affinity: Tensor

    def dense(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The (2N, 2N) matrix W, e.g. for ``weight_entropy`` or a check."""
        y = self.classes.repeat(2)
        return normalised_rows(self.affinity.to(self.classes.device, dtype)[y][:, y])

    def check(self, n_anchors: int) -> None:
        """Raise ValueError unless the affinity is a valid F for ``n_anchors`` / 2 classes."""
        f, n_classes = self.affinity, len(self.affinity)
        if f.shape != (n_classes, n_classes) or not torch.isfinite(f).all() or (f < 0).any():
            raise ValueError(
                "affinity is invalid: must be a finite (C, C) matrix with entries >= 0, got "
                f"shape {tuple(f.shape)}"
            )
        y = self.classes
        if y.shape != (n_anchors // 2,):
            raise ValueError(
                f"classes must have shape (N,) = ({n_anchors // 2},), got {tuple(y.shape)}"
            )
        if y.is_floating_point() or ((y < 0) | (y >= n_classes)).any():
            raise ValueError(
                f"classes are invalid: must be integer class indices in [0, {n_classes})"
            )
        if (f.diagonal()[y] <= 0).any():
            raise ValueError("affinity is invalid: F[c, c] must be > 0 for every class present")


def class_indices(labels: Tensor, num_classes: int | None = None) -> tuple[Tensor, int]:
    """Labels (N,) as class indices in ``[0, C)``, and C. With ``num_classes``, the labels are
    such indices already (a dataset's classes), C = ``num_classes``: nothing is read on the host.
    Without it, labels of any integers become indices into their distinct values
    (``torch.unique``: a device sync, as C is then a count of the data)."""
    if num_classes is not None:
        return labels.long(), num_classes
    values, indices = torch.unique(labels, return_inverse=True)
    return indices, len(values)


def normalised_rows(affinity: Tensor) -> Tensor:
    """``affinity`` (2N, 2N) >= 0 with its diagonal zeroed and each row divided by its sum, in
    place (callers pass a matrix of their own)."""
    affinity.fill_diagonal_(0.0)
    return affinity.div_(affinity.sum(1, keepdim=True))


@dataclass
class LogitWeights:
    """``W_ij = exp(l_ij) / sum_{k != i} exp(l_ik)`` for ``j != i``, ``W_ii = 0``, with logits
    ``l = left right^T`` of rank r: ``left``, ``right`` (2N, r). No shift is applied: the logits
    must keep ``exp`` finite and each row's sum above 0 (y-Aware's are <= 0, and 0 at the other
    view)."""

    left: Tensor
    right: Tensor

    def dense(self, dtype: torch.dtype = torch.float32) -> Tensor:
        kernel = (self.left.to(torch.float64) @ self.right.to(torch.float64).T).exp_()
        return normalised_rows(kernel).to(dtype)

    def check(self, n_anchors: int) -> None:
        for name, x in (("left", self.left), ("right", self.right)):
            if x.ndim != 2 or len(x) != n_anchors or x.shape != self.left.shape:
                raise ValueError(
                    f"{name} must have shape (2N, r) = ({n_anchors}, r) like left, got "
                    f"{tuple(x.shape)}"
                )
        check_weights(self.dense(torch.float64), n_anchors)

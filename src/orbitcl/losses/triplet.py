"""The triplet loss with semi-hard negative mining of FaceNet (Schroff et al. 2015) as a module."""

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss
from orbitcl.losses.kernels.negatives import negative_mask


def check_margin(margin: float) -> None:
    """Raise ValueError unless margin > 0."""
    if not margin > 0:  # `not >` also rejects NaN
        raise ValueError(f"margin={margin} is invalid: must be > 0")


def squared_distances(opening: kernels.Opening) -> Tensor:
    """``||z_k - z_i||^2`` (2n, 2N) of the anchors R (rows, columns ``cols``) to all anchors
    ``z``, from their Gram rows: ``G[i, i] + G[k, k] - 2 G[i, k]`` (no (2n, 2N, d))."""
    sq_norm = opening.z.square().sum(1)  # (2N,): 1, but 0 for an all-zero input row
    return (sq_norm[opening.cols, None] + sq_norm).sub_(opening.gram, alpha=2)


def triplet_semihard(
    z_a: Tensor, z_b: Tensor, margin: float, images: slice | None = None
) -> Tensor:
    """The triplet loss with semi-hard negatives (``TripletSemiHardLoss``), the mean over the 2n
    anchors of ``images`` (default: all 2N)."""
    check_margin(margin)
    o = kernels.dense_opening(
        z_a, z_b, images, "the triplet loss (at least one negative per anchor)"
    )
    z, cols, rows = o.z, o.cols, o.rows
    dist = squared_distances(o)  # (2n, 2N)
    positive = dist[rows, o.positive_cols]  # (2n,): d(a, p)
    with torch.no_grad():  # the choice of the negative is not differentiated, as in FaceNet
        negative = negative_mask(cols, len(z))  # (2n, 2N)
        farther = negative & (dist > positive[:, None])  # (2n, 2N)
        semi_hard = torch.where(farther, dist, torch.inf).argmin(1)  # (2n,)
        farthest = torch.where(negative, dist, -torch.inf).argmax(1)  # (2n,)
        chosen = torch.where(farther.any(1), semi_hard, farthest)  # (2n,)
    return F.relu(positive - dist[rows, chosen] + margin).mean()


class TripletSemiHardLoss(ContrastiveLoss):
    """The triplet loss of FaceNet (Schroff, Kalenichenko and Philbin, "FaceNet: A Unified
    Embedding for Face Recognition and Clustering", CVPR 2015) with semi-hard negative mining.

    ``L = mean_a max(0, d(a, p) - d(a, n) + margin)`` over the 2N anchors ``a`` of
    ``z = normalize(cat([z_a, z_b]))`` (the views of both sides), with ``p = p(a)`` the other
    view of a's image, ``n`` the negative chosen among the other images' views (``k != a,
    p(a)``, of both views), and ``d`` the squared Euclidean distance of the unit vectors,
    ``2 - 2 sim``, as in the paper (its embeddings are L2-normalised and its triplet condition
    reads ``||f(a) - f(p)||^2 + alpha < ||f(a) - f(n)||^2``; FaceNet's ``alpha`` is 0.2).

    Semi-hard: the closest negative farther than the positive, ``d(a, p) < d(a, n)``, which
    may lie within the margin or beyond it (then its term is 0). If no negative is farther than
    the positive, the fallback is the farthest negative, the least violating of them, as in
    TensorFlow's ``triplet_semihard_loss``. The choice is not differentiated; gradients flow
    through ``d(a, p)`` and ``d(a, n)``. Ties go to the lowest column.

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors mine
    their negatives among the embeddings of all ranks (``orbitcl.losses.gather``): the mean of
    the ranks' losses is the loss on the global batch.
    """

    paper: ClassVar[str] = (
        "Schroff, Kalenichenko and Philbin 2015, FaceNet: A Unified Embedding for Face "
        "Recognition and Clustering (CVPR)"
    )
    formula: ClassVar[str] = "orbitcl.losses.triplet.triplet_semihard"

    def __init__(self, margin: float = 0.2, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        check_margin(margin)
        self.margin = margin

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return triplet_semihard(z_a, z_b, self.margin, images)

"""The margin contrastive loss of Hadsell, Chopra and LeCun (CVPR 2006) as a module."""

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss
from orbitcl.losses.kernels.negatives import negative_mask
from orbitcl.losses.triplet import check_margin, squared_distances


def margin_contrastive(
    z_a: Tensor, z_b: Tensor, margin: float, images: slice | None = None
) -> Tensor:
    """The margin contrastive loss (``MarginContrastiveLoss``), the mean over the 2n anchors of
    ``images`` (default: all 2N)."""
    check_margin(margin)
    o = kernels.dense_opening(
        z_a, z_b, images, "the margin contrastive loss (at least one negative per anchor)"
    )
    z, cols = o.z, o.cols
    sq_dist = squared_distances(o)  # (2n, 2N): D^2
    positive = sq_dist[o.rows, o.positive_cols] / 2  # (2n,): D^2 / 2, no sqrt needed
    # D = sqrt(D^2) has no gradient where D = 0 (no direction to push along): the self entries,
    # and duplicate images. Below kernels.tolerance, D^2 is rounding noise: there D is the
    # constant 0, and the sqrt sees 1 instead, so the backward never divides by 0.
    coincide = sq_dist < kernels.tolerance(z)  # (2n, 2N)
    dist = torch.where(coincide, 0.0, torch.where(coincide, 1.0, sq_dist).sqrt())  # (2n, 2N)
    hinge = F.relu(margin - dist).square() / 2  # (2n, 2N)
    negative = negative_mask(cols, len(z))  # (2n, 2N)
    negatives = torch.where(negative, hinge, 0).sum(1) / (len(z) - 2)  # (2n,): their mean
    return (positive + negatives).mean()


class MarginContrastiveLoss(ContrastiveLoss):
    """The contrastive loss of Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning
    an Invariant Mapping" (CVPR 2006): pull similar pairs together, push dissimilar pairs apart
    up to a margin.

    The paper's loss of a pair at Euclidean distance D is ``(1 - Y) D^2 / 2 + Y max(0, m - D)^2
    / 2`` (Y = 0 similar, Y = 1 dissimilar). Here, on the unit vectors
    ``z = normalize(cat([z_a, z_b]))``, each of the 2N anchors i has one similar pair, its other
    view p(i), and 2N - 2 dissimilar ones, the views of the other images (``k != i, p(i)``):

    ``L = mean_i [D(i, p(i))^2 / 2 + mean_{k != i, p(i)} max(0, m - D(i, k))^2 / 2]``.

    Weighting: per anchor, the positive term plus the *mean* of its negative terms, so that
    positives and negatives weigh the same whatever the batch size (a plain sum over all pairs
    would weigh the negatives 2N - 2 times more, and more with every larger batch). Every pair
    appears twice, once from each end, as every anchor's terms are counted. D is the Euclidean
    distance, not squared in the hinge, as in the paper; ``D = sqrt(2 - 2 sim)`` lies in
    [0, 2] (``margin = 1``: negatives are pushed out to cosine 1/2; above 2, every negative is
    pushed). Where two embeddings coincide, a negative pair's term is ``m^2 / 2`` with no
    gradient (there is no direction to push along).

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors are
    contrasted with the embeddings of all ranks (``orbitcl.losses.gather``): the mean of the
    ranks' losses is the loss on the global batch.
    """

    paper: ClassVar[str] = (
        "Hadsell, Chopra and LeCun 2006, Dimensionality Reduction by Learning an Invariant "
        "Mapping (CVPR)"
    )
    formula: ClassVar[str] = "orbitcl.losses.margin.margin_contrastive"

    def __init__(self, margin: float = 1.0, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        check_margin(margin)
        self.margin = margin

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return margin_contrastive(z_a, z_b, self.margin, images)

"""Lifted structured loss: every positive pair against all the negatives of both its ends,
through a smooth log-sum-exp of margin-violating distances.

Oh Song, Xiang, Jegelka and Savarese, "Deep Metric Learning via Lifted Structured Feature
Embedding", CVPR 2016.
"""

from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.checks.numbers import require_number
from orbitcl.losses.base import ContrastiveLoss, Needs
from orbitcl.losses.vicreg import at_least_float32


def distances(z: Tensor) -> Tensor:
    """Euclidean distances (M, M) between the rows of z (M, d); the squared distance is clamped
    at 1e-12 before the root, so that coinciding rows (the diagonal) have a finite gradient."""
    sq = z.square().sum(1)  # (M,)
    return (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(1e-12).sqrt()


def lifted_structured(
    z_a: Tensor, z_b: Tensor, margin: float = 1.0, labels: Tensor | None = None
) -> Tensor:
    """The smooth lifted structured loss (the paper's Eq. 4) on the 2N embeddings
    ``z = cat([z_a, z_b])`` (rows from images ``0..N-1`` twice):

    ``1 / (2 |P|) sum_{(i, j) in P} max(0, J_ij)^2``,
    ``J_ij = log(sum_{k in N(i)} exp(margin - D_ik) + sum_{l in N(j)} exp(margin - D_jl)) + D_ij``

    with D the Euclidean distances, P the unordered positive pairs and N(i) the negatives of i.
    Without ``labels``: P the N pairs of views of one image, N(i) every embedding of another
    image (both views). With ``labels`` (N,), the class-label form (the paper's): P every pair
    of embeddings of the same class, N(i) those of other classes; the batch needs two classes.
    float32 at least.
    """
    if z_a.ndim != 2 or z_a.shape != z_b.shape or len(z_a) < 2:
        raise ValueError(
            "the lifted structured loss needs two views of the same shape (N, d) with N >= 2, "
            f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    require_number("margin", margin, 0)
    z_a, z_b = at_least_float32(z_a, z_b)
    z = torch.cat([z_a, z_b])  # (2N, d)
    ids = torch.arange(len(z_a), device=z.device) if labels is None else labels
    ids = ids.repeat(2)  # (2N,): image (or class) of each row
    same = ids[:, None] == ids[None, :]  # (2N, 2N)
    dist = distances(z)  # (2N, 2N)
    # (2N,): log sum_{k in N(i)} exp(margin - D_ik), -inf where masked out
    lse = torch.logsumexp(torch.where(same, -torch.inf, margin - dist), dim=1)
    if labels is None:  # P: the N pairs (i, N + i), J only there, not over all (2N)^2 pairs
        n = len(z_a)
        j = torch.logaddexp(lse[:n], lse[n:]) + dist[:n, n:].diagonal()  # (N,)
        return j.clamp_min(0).square().sum() / (2 * n)
    positive = same.triu(diagonal=1)  # each unordered pair once, no self-pairs
    j = torch.logaddexp(lse[:, None], lse[None, :]) + dist  # (2N, 2N)
    hinge = torch.where(positive, j.clamp_min(0).square(), 0.0)
    return hinge.sum() / (2 * positive.sum())


class LiftedStructuredLoss(ContrastiveLoss):
    """Smooth lifted structured loss (Oh Song et al., CVPR 2016) on the pairs of views: each
    image's two views are a positive pair, every other image's views its negatives.

    ``margin`` is the paper's alpha (1 in its experiments). The distances are those of the
    projector outputs as they come (the paper's embedding is not normalised either). Under DDP
    (``gather_distributed``) every rank computes the global batch's loss on the gathered views.
    """

    paper: ClassVar[str] = (
        "Oh Song, Xiang, Jegelka and Savarese 2016, Deep Metric Learning via Lifted Structured "
        "Feature Embedding"
    )
    formula: ClassVar[str] = "orbitcl.losses.lifted.lifted_structured"

    def __init__(self, margin: float = 1.0, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        require_number("margin", margin, 0)
        self.margin = margin

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None, *labels: Tensor) -> Tensor:
        # The global batch's loss on every rank (gathered views).
        return lifted_structured(z_a, z_b, self.margin, *labels)


class LiftedStructuredClassLoss(LiftedStructuredLoss):
    """Lifted structured loss, the paper's class-label form: every pair of same-class
    embeddings in the batch is positive, every other-class one negative."""

    needs = Needs(labels=True)

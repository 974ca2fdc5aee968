"""SimSiam: a predictor's output against the stop-gradient projection of the other view.

Chen and He, "Exploring Simple Siamese Representation Learning", CVPR 2021.
"""

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses.base import Loss, Needs
from orbitcl.losses.vicreg import at_least_float32


def check_pairs(p_a: Tensor, p_b: Tensor, t_a: Tensor, t_b: Tensor) -> None:
    """Predictions and targets of two views, all (N, d) with N >= 1."""
    shapes = {tuple(x.shape) for x in (p_a, p_b, t_a, t_b)}
    if p_a.ndim != 2 or len(shapes) != 1 or len(p_a) == 0:
        raise ValueError(
            "predictions and targets must all have the same shape (N, d) with N >= 1, got "
            f"{[tuple(x.shape) for x in (p_a, p_b, t_a, t_b)]}"
        )


def mean_cosine(p: Tensor, t: Tensor) -> Tensor:
    """``mean_n cos(p_n, t_n)`` of rows (N, d), gradient into p only (t detached)."""
    p, t = at_least_float32(p, t.detach())
    return (F.normalize(p, dim=1) * F.normalize(t, dim=1)).sum(1).mean()


def simsiam(p_a: Tensor, p_b: Tensor, z_a: Tensor, z_b: Tensor) -> Tensor:
    """``D(p_a, z_b) / 2 + D(p_b, z_a) / 2``, ``D(p, z) = -mean_n cos(p_n, stopgrad(z_n))``:
    predictions ``p`` (N, d) of each view against the other view's projections ``z``."""
    check_pairs(p_a, p_b, z_a, z_b)
    return -(mean_cosine(p_a, z_b) + mean_cosine(p_b, z_a)) / 2


class SimSiamLoss(Loss):
    """SimSiam (Chen and He, CVPR 2021): symmetric negative cosine of a predictor's outputs
    against the stop-gradient projections of the other view; no negatives, no momentum encoder.

    ``forward(p_a, p_b, z_a, z_b)``: ``needs.predictor`` makes the training step
    (``orbitcl.training.objectives``) pass the predictor's outputs of each view's projections
    as ``p`` and the projections themselves as targets. Without the predictor (or the stop
    gradient) it collapses: ``collapse/std`` (``orbitcl.callbacks.CollapseMonitor``) shows it.

    It equals lightly's ``0.5 * (NegativeCosineSimilarity()(p_a, z_b.detach()) +
    NegativeCosineSimilarity()(p_b, z_a.detach()))`` (the usage of lightly's SimSiam example),
    float64, to rounding: lightly's eps clamps each norm at 1e-8, ``F.normalize`` at 1e-12,
    the same on any non-zero row. Each term is a mean over the N images: under DDP the mean of
    the ranks' losses is the global batch's, so nothing is gathered.
    """

    paper: ClassVar[str] = "Chen and He 2021, Exploring Simple Siamese Representation Learning"
    formula: ClassVar[str] = "orbitcl.losses.simsiam.simsiam"
    needs = Needs(predictor=True)

    def forward(self, p_a: Tensor, p_b: Tensor, z_a: Tensor, z_b: Tensor) -> Tensor:
        """The loss (a scalar) of predictions ``p_a``, ``p_b`` and projections ``z_a``, ``z_b``."""
        return simsiam(p_a, p_b, z_a, z_b)

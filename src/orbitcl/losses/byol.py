"""BYOL: an online network's predictions regress a momentum (EMA) target network's projections.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020.
"""

from typing import ClassVar

from torch import Tensor

from orbitcl.checks.numbers import require_in
from orbitcl.losses.base import Loss, Needs, check_momentum_schedule
from orbitcl.losses.simsiam import check_pairs, mean_cosine


def byol(p_a: Tensor, p_b: Tensor, k_a: Tensor, k_b: Tensor) -> Tensor:
    """``L + L~ = mean_n ||q_a - k_b||^2 + ||q_b - k_a||^2`` on unit vectors, i.e.
    ``mean_n [(2 - 2 cos(p_a, k_b)) + (2 - 2 cos(p_b, k_a))]``: the online predictions
    ``p`` (N, d) of each view against the target projections ``k`` (N, d) of the other,
    ``k`` detached."""
    check_pairs(p_a, p_b, k_a, k_b)
    return 4 - 2 * (mean_cosine(p_a, k_b) + mean_cosine(p_b, k_a))


class BYOLLoss(Loss):
    """BYOL (Grill et al., NeurIPS 2020): the symmetrised squared distance between the online
    predictions and the target projections of the other view, both l2-normalised.

    ``forward(p_a, p_b, k_a, k_b)``: ``needs.predictor`` and ``needs.momentum_keys`` make the
    training step (``orbitcl.training.objectives``) pass the predictor's outputs of the online
    projections and the projections of the same views by the target network, EMA copies of
    encoder and projector (``orbitcl.training.momentum.MomentumEncoder``) whose rate follows
    BYOL's cosine schedule ``tau_k = 1 - (1 - momentum) (cos(pi k / K) + 1) / 2`` from
    ``momentum`` (tau_base, 0.996) at step 0 to 1 at the last step K (``momentum_schedule``:
    ``cosine``; ``constant`` keeps tau_base).

    Conventions: the paper sums the two directions (``L + L~``), each ``2 - 2 cos`` averaged
    over the batch, as here, so the loss lies in [0, 8]. lightly's BYOL example takes
    ``0.5 * (NegativeCosineSimilarity()(p_a, k_b) + NegativeCosineSimilarity()(p_b, k_a))``:
    ours is ``4 + 4 x`` lightly's (the test shows it), the same gradient up to that factor 4.
    lightly's ``cosine_schedule(step, max_steps, ...)`` divides by ``max_steps - 1``: ours at
    (k, K) is lightly's at (k, K + 1). Each term is a mean over images: under DDP the mean of
    the ranks' losses is the global batch's, and the EMA follows the (all-reduced) weights, the
    same on every rank.
    """

    paper: ClassVar[str] = (
        "Grill et al. 2020, Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning"
    )
    formula: ClassVar[str] = "orbitcl.losses.byol.byol"
    needs = Needs(predictor=True, momentum_keys=True)

    def __init__(
        self,
        momentum: float = 0.996,
        momentum_schedule: str = "cosine",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        require_in("momentum", momentum, 0, 1, "[)")
        check_momentum_schedule(momentum_schedule)
        self.momentum = momentum
        self.momentum_schedule = momentum_schedule

    def forward(self, p_a: Tensor, p_b: Tensor, k_a: Tensor, k_b: Tensor) -> Tensor:
        """The loss (a scalar) of online predictions ``p_a``, ``p_b`` and target keys."""
        return byol(p_a, p_b, k_a, k_b)

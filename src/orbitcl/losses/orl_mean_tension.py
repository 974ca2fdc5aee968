"""ORL control: NT-Xent with every negative logit scaled by the batch mean of ORL's tension.

``docs/orl.md`` ("Known confound"): multiplying negative logits by T < 1 is, to first order, a
higher temperature for the negatives only, which by itself tightens orbits. This control keeps
that average softening and drops everything else: one scale for all negatives of the batch, no
per-negative direction, no gradient through T.
"""

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import TensionLoss
from orbitcl.losses.functional import check_t_min, check_temperature
from orbitcl.parallel import collectives


def orl_mean_tension(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t_min: float = 1e-6,
    images: slice | None = None,
    sum_across: Callable[[Tensor], Tensor] | None = None,
    negatives: str = "all",
) -> Tensor:
    """``mean_i [-sim(i, p(i)) / tau + log(exp(sim(i, p(i)) / tau)
    + sum_k exp(c sim(i, k) / tau))]``, k over the ``negatives`` of i (``kernels.negatives``;
    ``all``: ``k != i, p(i)``), the mean over the anchors of ``images``.

    ``c`` is the mean of ORL's tension T (``functional.tension``, clamped to ``[t_min, 1]``)
    over those negatives of those anchors, detached: a constant of the batch.
    ``sum_across``, a function summing a tensor over processes, makes it the mean over the
    anchors of all processes (under DDP: the global batch's). Without it, ``images`` restricts
    the mean too, and the mean of the losses of disjoint ``images`` is not the full loss.
    """
    check_temperature(temperature)
    check_t_min(t_min)
    kernels.check_negatives(negatives)
    z, z_rows, cols, rows, positive_cols, gram = kernels.dense_opening(
        z_a, z_b, images, "ORL's mean-tension control (at least one negative per anchor)"
    )  # gram: (2n, 2N)
    with torch.no_grad():  # c is a constant of the batch
        t = kernels.tension_rows(z_rows, z, gram, cols, t_min)  # (2n, 2N), finite everywhere
        chosen = kernels.negative_mask(cols, len(z), negatives)  # (2n, 2N)
        # A product, not t[chosen]: boolean indexing sizes its output on the host.
        stats = torch.stack([t.mul(chosen).sum(), chosen.sum().to(t.dtype)])  # (2,): sum, count
        if sum_across is not None:
            stats = sum_across(stats)
        scale = stats[0] / stats[1]  # c, a 0-dim tensor
    logits = gram * scale  # (2n, 2N)
    logits[rows, positive_cols] = gram[rows, positive_cols]  # the positive's logit is NT-Xent's
    return kernels.info_nce(logits.div_(temperature), cols, negatives)


class ORLMeanTensionLoss(TensionLoss):
    """ORL's mean-tension control: NT-Xent with each negative logit multiplied by ``c``, the
    batch mean of ORL's tension over the negatives, detached.

    ``L = mean_i [-sim(i, p(i)) / tau + log(exp(sim(i, p(i)) / tau)
    + sum_{k != i, p(i)} exp(c sim(i, k) / tau))]``. ORL (``ORLLoss``, the orbit regularization
    write-up in ``docs/orl.md``) multiplies negative k's logit by its own ``T[i, k]``; this
    control keeps the same average factor, which acts as a higher temperature for the negatives,
    and removes which negative gets which factor. An ORL result counts only beside it
    (``docs/orl.md``, "Known confound"). With ``t_min = 1`` it is NT-Xent.

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors are
    contrasted with the embeddings of all ranks (``orbitcl.losses.gather``), and ``c`` is the
    mean over the global batch: the ranks all-reduce the sum and count of their rows' tension,
    so the mean of the ranks' losses is the one-process loss on the global batch.

    ``negatives`` (``all``, ``cross_view``, ``within_view``): the negatives in each anchor's
    softmax, as for ``ORLLoss``; ``c`` is the mean tension of those.
    """

    paper: ClassVar[str] = (
        "orbitcl's control for ORL: Contrastive Learning with Latent Tension Regularization for"
        " Tight Orbits (the ORL write-up)"
    )
    formula: ClassVar[str] = "orbitcl.losses.orl_mean_tension.orl_mean_tension"

    def __init__(
        self,
        temperature: float = 0.5,
        t_min: float = 1e-6,
        gather_distributed: bool = False,
        negatives: str = "all",
    ) -> None:
        super().__init__(temperature, t_min, negatives, gather_distributed)

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        distributed = self.gather_distributed and collectives.world_size() > 1
        sum_across = collectives.sum_over_ranks if distributed else None
        return orl_mean_tension(
            z_a, z_b, self.temperature, self.t_min, images, sum_across, self.negatives
        )

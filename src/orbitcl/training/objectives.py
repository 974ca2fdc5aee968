"""How a loss takes part in a training step: what it is given, and what it does after.

A loss declares what it needs (``orbitcl.losses.base.Needs``): class labels, keys from a momentum
encoder, the training-set size. ``objective_for`` reads that once, when the module is built, and
returns the strategy that serves it, so that the training step never asks a loss what it is:

- ``Objective``: the loss on every pair of views, with the batch's labels if it needs them.
- ``MomentumObjective`` (MoCo): also the keys of the same views from EMA copies of encoder and
  projector (``MomentumEncoder``), enqueued once the step's loss is known to be finite, and the
  EMA step after every optimiser step.

A loss from another library (any ``nn.Module`` taking two views) needs nothing.
"""

from collections.abc import Sequence
from itertools import combinations

import torch
from torch import Tensor, nn

from orbitcl.losses.base import Loss, Needs
from orbitcl.training.momentum import MomentumEncoder


def needs_of(loss: nn.Module) -> Needs:
    """What ``loss`` declared; nothing for a loss that is not orbitcl's."""
    return loss.needs if isinstance(loss, Loss) else Needs()


def pairs_of(n_views: int) -> list[tuple[int, int]]:
    """The V(V-1)/2 pairs of views ``(a, b)``, a < b, in a fixed order."""
    return list(combinations(range(n_views), 2))


class Objective(nn.Module):
    """A loss on every pair of views of a batch; holds no parameters."""

    def __init__(self, needs: Needs) -> None:
        super().__init__()
        self.needs = needs

    def forward(
        self, loss: nn.Module, zs: Sequence[Tensor], views: Sequence[Tensor], labels: Tensor
    ) -> Tensor:
        """The loss of each pair of views (P,), from the projections ``zs`` (V x (B, d)) of the
        ``views`` (V x (B, C, H, W)) of images with ``labels`` (B,)."""
        extra = (labels,) if self.needs.labels else ()
        return torch.stack([loss(zs[a], zs[b], *extra) for a, b in pairs_of(len(zs))])

    def step_succeeded(self, loss: nn.Module) -> None:
        """Called once the step's objective is finite, before backward."""

    def optimizer_stepped(self, encoder: nn.Module, projector: nn.Module) -> None:
        """Called after every optimiser step."""


class MomentumObjective(Objective):
    """MoCo's step: each pair's queries against the keys of the same views from a momentum
    encoder, whose keys join the loss's queue after the step (the loss has read the queue into a
    copy, so enqueueing in place before backward is safe), and whose EMA step follows every
    optimiser step: ``theta_k <- m theta_k + (1 - m) theta_q``."""

    def __init__(self, needs: Needs, encoder: nn.Module, projector: nn.Module, momentum: float):
        super().__init__(needs)
        self.momentum_encoder = MomentumEncoder(encoder, projector, momentum)
        self._keys: list[Tensor] | None = None

    def forward(self, loss, zs, views, labels) -> Tensor:
        keys = self.momentum_encoder(torch.cat(list(views))).chunk(len(views))  # V x (B, d)
        self._keys = list(keys)
        return torch.stack([loss(zs[a], zs[b], keys[a], keys[b]) for a, b in pairs_of(len(zs))])

    def step_succeeded(self, loss: nn.Module) -> None:
        loss.enqueue(self._keys)
        self._keys = None

    def optimizer_stepped(self, encoder: nn.Module, projector: nn.Module) -> None:
        self.momentum_encoder.update(encoder, projector)


def objective_for(
    loss: nn.Module, encoder: nn.Module, projector: nn.Module, field: str = "loss"
) -> Objective:
    """The strategy that serves what ``loss`` needs; ``field`` names it in errors (``aux.vrn``).

    Only the main loss may need momentum keys: one momentum encoder serves one queue.
    """
    needs = needs_of(loss)
    if needs.predictor:  # SimSiam, BYOL: their predictor is not built by the training step yet
        raise ValueError(
            f"{field}={loss.__class__.__name__} is invalid: losses that need a predictor "
            "(SimSiam, BYOL) are not served by the training step yet"
        )
    if not needs.momentum_keys:
        return Objective(needs)
    if field != "loss":
        raise ValueError(
            f"{field}={loss.__class__.__name__} is invalid: a loss that needs momentum keys "
            "(MoCo) can only be the main loss"
        )
    return MomentumObjective(needs, encoder, projector, loss.momentum)


def gathering(losses: Sequence[nn.Module]) -> list[nn.Module]:
    """The losses to switch to DDP gathering: orbitcl's, and a peer's that has the switch
    (lightly's ``gather_distributed``)."""
    return [loss for loss in losses if isinstance(loss, Loss) or "gather_distributed" in vars(loss)]

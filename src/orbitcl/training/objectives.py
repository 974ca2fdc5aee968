"""How a loss takes part in a training step: what it is given, and what it does after.

A loss declares what it needs (``orbitcl.losses.base.Needs``): class labels, keys from a momentum
encoder, a predictor head, the training-set size. ``objective_for`` reads that once, when the
module is built, and returns the strategy that serves it, so that the training step never asks a
loss what it is:

- ``Objective``: the loss on every pair of views, with the batch's labels if it needs them.
- ``PredictorObjective`` (SimSiam): a predictor's outputs of each view's projections against
  the projections themselves, ``loss(p_a, p_b, z_a, z_b)``.
- ``MomentumObjective`` (MoCo, BYOL): also the keys of the same views from EMA copies of encoder
  and projector (``MomentumEncoder``), whose rate follows the loss's ``momentum_schedule``, with
  the EMA step after every optimiser step. MoCo's keys are enqueued once the step's loss is known
  to be finite; BYOL's online side is its predictor's outputs, ``loss(p_a, p_b, k_a, k_b)``.

The predictor (built from ``model.predictor``) is a submodule of the objective, so its
parameters are the module's: in the optimiser and in the state dict (``objective.predictor.*``).

A loss from another library (any ``nn.Module`` taking two views) needs nothing.
"""

import math
from collections.abc import Sequence
from itertools import combinations

import torch
from torch import Tensor, nn

from orbitcl.losses.base import Loss, Needs
from orbitcl.training.momentum import MomentumEncoder
from orbitcl.training.projection import project


def needs_of(loss: nn.Module) -> Needs:
    """What ``loss`` declared; nothing for a loss that is not orbitcl's."""
    return loss.needs if isinstance(loss, Loss) else Needs()


def pairs_of(n_views: int) -> list[tuple[int, int]]:
    """The V(V-1)/2 pairs of views ``(a, b)``, a < b, in a fixed order."""
    return list(combinations(range(n_views), 2))


def predicted(predictor: nn.Module, zs: Sequence[Tensor]) -> list[Tensor]:
    """The predictor's outputs V x (B, d') of the projections ``zs`` (V x (B, d)), in fp32 like
    the projections (``training.projection``), in one pass over all views: its BatchNorm sees the
    whole batch, as the encoder's and projector's do."""
    return list(project(predictor, torch.cat(list(zs))).chunk(len(zs)))


class Objective(nn.Module):
    """A loss on every pair of views of a batch; holds no parameters."""

    # Whether the step depends on the run's length K (``train_started``): a resume with another
    # K would change it (orbitcl.training.resume.ConfigSnapshot).
    schedule_over_run: bool = False

    def __init__(self, needs: Needs) -> None:
        super().__init__()
        self.needs = needs
        # The predictor head, for the losses that need one (an attribute of the instance: a
        # class attribute would hide the submodule that a subclass registers under its name).
        self.predictor: nn.Module | None = None

    def forward(
        self, loss: nn.Module, zs: Sequence[Tensor], views: Sequence[Tensor], labels: Tensor
    ) -> Tensor:
        """The loss of each pair of views (P,), from the projections ``zs`` (V x (B, d)) of the
        ``views`` (V x (B, C, H, W)) of images with ``labels`` (B,)."""
        extra = (labels,) if self.needs.labels else ()
        return torch.stack([loss(zs[a], zs[b], *extra) for a, b in pairs_of(len(zs))])

    def step_succeeded(self, loss: nn.Module) -> None:
        """Called once the step's objective is finite, before backward."""

    def train_started(self, total_steps: float) -> None:
        """Called when training starts (or resumes): the run's optimiser steps, ``inf`` for
        endless training."""

    def optimizer_stepped(self, encoder: nn.Module, projector: nn.Module, step: int) -> None:
        """Called after optimiser step ``step`` (0 for the first)."""


class PredictorObjective(Objective):
    """SimSiam's step: ``loss(p_a, p_b, z_a, z_b)`` for each pair of views, ``p = predictor(z)``;
    the loss stops the gradient of its targets ``z``."""

    def __init__(self, needs: Needs, predictor: nn.Module) -> None:
        super().__init__(needs)
        self.predictor = predictor

    def forward(self, loss, zs, views, labels) -> Tensor:
        ps = predicted(self.predictor, zs)  # V x (B, d)
        return torch.stack([loss(ps[a], ps[b], zs[a], zs[b]) for a, b in pairs_of(len(zs))])


class MomentumObjective(Objective):
    """MoCo's and BYOL's step: each pair's online side (MoCo: the projections, its queries;
    BYOL: the ``predictor``'s outputs of them) against the keys of the same views from a momentum
    encoder, whose EMA step follows every optimiser step k of K:
    ``theta_k <- m_k theta_k + (1 - m_k) theta_q``, ``m_k = momentum_encoder.rate(k, K)``.
    With ``needs.key_queue`` (MoCo) the keys join the loss's queue after the step (the loss has
    read the queue into a copy, so enqueueing in place before backward is safe)."""

    def __init__(
        self,
        needs: Needs,
        encoder: nn.Module,
        projector: nn.Module,
        momentum: float,
        schedule: str = "constant",
        predictor: nn.Module | None = None,
    ):
        super().__init__(needs)
        self.momentum_encoder = MomentumEncoder(encoder, projector, momentum, schedule)
        self.predictor = predictor
        self._keys: list[Tensor] | None = None
        self._total_steps: float = math.inf

    @property
    def schedule_over_run(self) -> bool:
        """Whether the EMA rate depends on the run's length K (BYOL's cosine; MoCo's constant
        does not)."""
        return self.momentum_encoder.schedule != "constant"

    def train_started(self, total_steps: float) -> None:
        self.momentum_encoder.rate(0, total_steps)  # a cosine schedule refuses endless training
        self._total_steps = total_steps

    def forward(self, loss, zs, views, labels) -> Tensor:
        keys = self.momentum_encoder(torch.cat(list(views))).chunk(len(views))  # V x (B, d)
        if self.needs.key_queue:
            self._keys = list(keys)
        online = zs if self.predictor is None else predicted(self.predictor, zs)  # V x (B, d)
        pairs = pairs_of(len(zs))
        return torch.stack([loss(online[a], online[b], keys[a], keys[b]) for a, b in pairs])

    def step_succeeded(self, loss: nn.Module) -> None:
        if self.needs.key_queue:
            loss.enqueue(self._keys)
            self._keys = None

    def optimizer_stepped(self, encoder: nn.Module, projector: nn.Module, step: int) -> None:
        rate = self.momentum_encoder.rate(step, self._total_steps)
        self.momentum_encoder.update(encoder, projector, rate)


def objective_for(
    loss: nn.Module,
    encoder: nn.Module,
    projector: nn.Module,
    field: str = "loss",
    *,
    predictor: nn.Module | None = None,
) -> Objective:
    """The strategy that serves what ``loss`` needs; ``field`` names it in errors (``aux.vrn``).

    Only the main loss may need momentum keys or a predictor: one momentum encoder serves one
    queue, and the one ``predictor`` (built from ``model.predictor``) serves the main loss. A
    loss that needs a predictor must be given one, and one that does not must not.
    """
    needs = needs_of(loss)
    name = loss.__class__.__name__
    if field != "loss" and (needs.momentum_keys or needs.predictor):
        raise ValueError(
            f"{field}={name} is invalid: a loss that needs momentum keys or a predictor "
            "(MoCo, SimSiam, BYOL) can only be the main loss"
        )
    if needs.predictor and predictor is None:
        raise ValueError(f"{field}={name} needs a predictor (model.predictor), and none was given")
    if predictor is not None and not needs.predictor:
        raise ValueError(f"{field}={name} takes no predictor, but model.predictor was given")
    if needs.momentum_keys:
        schedule = getattr(loss, "momentum_schedule", "constant")  # constant if it has none
        return MomentumObjective(needs, encoder, projector, loss.momentum, schedule, predictor)
    if needs.predictor:
        return PredictorObjective(needs, predictor)
    return Objective(needs)


def gathering(losses: Sequence[nn.Module]) -> list[nn.Module]:
    """The losses to switch to DDP gathering: orbitcl's, and a peer's that has the switch
    (lightly's ``gather_distributed``)."""
    return [loss for loss in losses if isinstance(loss, Loss) or "gather_distributed" in vars(loss)]

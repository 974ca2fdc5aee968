"""The momentum (EMA) encoder shared by MoCo (its key encoder) and BYOL (its target network):
copies of the encoder and projector that follow the online ones at a rate set by a schedule."""

import copy
import math

import torch
from torch import Tensor, nn

from orbitcl.losses.base import check_momentum_schedule
from orbitcl.training.projection import project


class MomentumEncoder(nn.Module):
    """The key encoder of MoCo (He et al., CVPR 2020, Sec. 3.2) and the target network of BYOL
    (Grill et al. 2020, Sec. 3.1): copies of ``encoder`` and ``projector`` taken at
    construction, whose parameters follow the online ones by

        theta_k <- m theta_k + (1 - m) theta_q      (``update``, after every optimiser step)

    where the rate m of optimiser step k of K is ``rate(k, K)``: the base ``momentum`` under the
    ``constant`` schedule (MoCo's), BYOL's ``cosine_momentum`` from it to 1 under ``cosine``.
    The copies never receive gradients (``requires_grad=False``; ``forward`` runs under
    ``no_grad``).
    As in MoCo's code only parameters are averaged: the BatchNorm running statistics of the copy
    come from its own forward passes, in train mode like the online encoder. There is no
    shuffling BN (MoCo's guard against BN leaking which key is the positive across a GPU's batch);
    under DDP with ``sync_batchnorm`` both encoders normalise over the global batch.

    As a submodule of ``ContrastiveModule`` its weights and buffers are in the state dict, so
    checkpoints and resumes keep them.
    """

    def __init__(
        self, encoder: nn.Module, projector: nn.Module, momentum: float, schedule: str = "constant"
    ) -> None:
        super().__init__()
        if not 0 <= momentum < 1:  # `not` also rejects NaN
            raise ValueError(f"momentum={momentum} is invalid: must be in [0, 1)")
        check_momentum_schedule(schedule)
        self.encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.projector = copy.deepcopy(projector).requires_grad_(False)
        self.momentum = momentum  # the base rate: tau_base under the cosine schedule
        self.schedule = schedule

    def rate(self, step: int, total_steps: float) -> float:
        """The EMA rate of optimiser step ``step`` (0 for the first) of ``total_steps``: a host
        float from host numbers, so no step waits for the device."""
        return SCHEDULES[self.schedule](self.momentum, step, total_steps)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Keys of a batch of images: (B, C, H, W) -> (B, projector.out_dim), no gradient."""
        return project(self.projector, self.encoder(images))  # fp32, as the queries

    @torch.no_grad()
    def update(self, encoder: nn.Module, projector: nn.Module, rate: float | None = None) -> None:
        """One EMA step towards the online ``encoder`` and ``projector`` (same architecture) at
        ``rate`` (this step's ``rate(k, K)``); None, only under the constant schedule: at
        ``momentum``."""
        if rate is None:
            if self.schedule != "constant":  # the step's rate is not the base rate
                raise ValueError(f"a momentum_schedule={self.schedule!r} EMA step needs its rate")
            rate = self.momentum
        online = [*encoder.parameters(), *projector.parameters()]
        ema = [*self.encoder.parameters(), *self.projector.parameters()]
        for p_k, p_q in zip(ema, online, strict=True):
            p_k.mul_(rate).add_(p_q.detach(), alpha=1 - rate)


def constant_momentum(base: float, step: int, total_steps: float) -> float:
    """MoCo's EMA rate: ``base`` at every step."""
    return base


def cosine_momentum(base: float, step: int, total_steps: float) -> float:
    """BYOL's EMA rate at optimiser step k of K (Grill et al. 2020, Sec. 3.2):
    ``tau_k = 1 - (1 - base) (cos(pi k / K) + 1) / 2``, from ``base`` at k = 0 to 1 at k = K.
    lightly's ``cosine_schedule(step, max_steps, ...)`` divides by ``max_steps - 1``: this is
    lightly's at ``(k, K + 1)``."""
    if not 0 <= base < 1:
        raise ValueError(f"momentum={base} is invalid: must be in [0, 1)")
    if not math.isfinite(total_steps):
        raise ValueError(
            "momentum_schedule='cosine' needs the length of training: set trainer.max_steps or "
            "trainer.max_epochs (not both -1)"
        )
    progress = min(max(step, 0), total_steps) / max(total_steps, 1)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


# Each name of losses.base.MOMENTUM_SCHEDULES (which the losses check): rate(base, k, K).
SCHEDULES = {"constant": constant_momentum, "cosine": cosine_momentum}

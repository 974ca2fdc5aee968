"""MoCo's momentum (key) encoder: EMA copies of the encoder and projector that embed the keys."""

import copy
import math

import torch
from torch import Tensor, nn

from orbitcl.training.projection import project


class MomentumEncoder(nn.Module):
    """The key encoder of MoCo (He et al., CVPR 2020, Sec. 3.2): copies of ``encoder`` and
    ``projector`` taken at construction, whose parameters follow the online ones by

        theta_k <- m theta_k + (1 - m) theta_q      (``update``, after every optimiser step)

    and never receive gradients (``requires_grad=False``; ``forward`` runs under ``no_grad``).
    As in MoCo's code only parameters are averaged: the BatchNorm running statistics of the copy
    come from its own forward passes, in train mode like the online encoder. There is no
    shuffling BN (MoCo's guard against BN leaking which key is the positive across a GPU's batch);
    under DDP with ``sync_batchnorm`` both encoders normalise over the global batch.

    As a submodule of ``ContrastiveModule`` its weights and buffers are in the state dict, so
    checkpoints and resumes keep them.
    """

    def __init__(self, encoder: nn.Module, projector: nn.Module, momentum: float) -> None:
        super().__init__()
        if not 0 <= momentum < 1:  # `not` also rejects NaN
            raise ValueError(f"momentum={momentum} is invalid: must be in [0, 1)")
        self.encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.projector = copy.deepcopy(projector).requires_grad_(False)
        self.momentum = momentum

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Keys of a batch of images: (B, C, H, W) -> (B, projector.out_dim), no gradient."""
        return project(self.projector, self.encoder(images))  # fp32, as the queries

    @torch.no_grad()
    def update(self, encoder: nn.Module, projector: nn.Module) -> None:
        """One EMA step towards the online ``encoder`` and ``projector`` (same architecture)."""
        online = [*encoder.parameters(), *projector.parameters()]
        ema = [*self.encoder.parameters(), *self.projector.parameters()]
        for p_k, p_q in zip(ema, online, strict=True):
            p_k.mul_(self.momentum).add_(p_q.detach(), alpha=1 - self.momentum)


def cosine_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL's EMA rate at optimiser step k of K (Grill et al. 2020, Sec. 3.2):
    ``tau_k = 1 - (1 - base) (cos(pi k / K) + 1) / 2``, from ``base`` at k = 0 to 1 at k = K.
    lightly's ``cosine_schedule(step, max_steps, ...)`` divides by ``max_steps - 1``: this is
    lightly's at ``(k, K + 1)``."""
    if not 0 <= base < 1:
        raise ValueError(f"momentum={base} is invalid: must be in [0, 1)")
    progress = min(max(step, 0), total_steps) / max(total_steps, 1)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2

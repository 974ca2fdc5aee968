"""The projector's output in IEEE fp32, under mixed precision and TF32 alike."""

import torch
from torch import nn

from orbitcl.losses.kernels.precision import ieee_fp32


def project(projector: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``projector(features)`` (n, d), in fp32 when autocast is on: bf16-mixed would round the
    projections to bfloat16 (8 bits of mantissa) before the loss upcasts them, and ORL's tension
    of tight orbits would be noise (``docs/gpu.md``). The projector is a small MLP beside the
    encoder, so running it in fp32 costs little; the encoder keeps bf16. For the same reason its
    products run in IEEE fp32 when TF32 is on globally (`float32_matmul_precision`): TF32 is for
    the encoder only."""
    device = features.device.type
    with ieee_fp32():
        if not torch.is_autocast_enabled(device):
            return projector(features)
        with torch.autocast(device, enabled=False):
            return projector(features.float())

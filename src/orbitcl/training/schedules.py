"""Learning-rate schedules that know the run's length (`total_steps`, from the trainer)."""

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from orbitcl.checks.numbers import require_in


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    final_lr_fraction: float = 0.0,
) -> LambdaLR:
    """Linear warm-up over the first `warmup_fraction` of training, then cosine decay to
    `final_lr_fraction` of the base learning rate (SimCLR's schedule)."""
    require_in("warmup_fraction", warmup_fraction, 0, 1, "[)")
    warmup_steps = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return final_lr_fraction + (1 - final_lr_fraction) * cosine

    return LambdaLR(optimizer, factor)

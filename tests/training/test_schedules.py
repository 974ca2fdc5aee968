import math

import pytest
import torch

from orbitcl.training.schedules import warmup_cosine


def lrs(total_steps, **kwargs):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=total_steps, **kwargs)
    out = []
    for _ in range(total_steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_then_cosine_to_final_fraction():
    out = lrs(100, warmup_fraction=0.1, final_lr_fraction=0.1)
    assert out[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert out[10] == pytest.approx(1.0)
    # halfway through the decay: 0.1 + 0.9 * 0.5 * (1 + cos(pi / 2))
    assert out[10 + 45] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert min(out) >= 0.1 - 1e-12 and out[-1] == pytest.approx(0.1, abs=1e-3)


def test_no_warmup_starts_at_base_lr():
    assert lrs(10, warmup_fraction=0.0)[0] == 1.0


def test_rejects_bad_warmup():
    with pytest.raises(ValueError, match="^warmup_fraction=1"):
        lrs(10, warmup_fraction=1)

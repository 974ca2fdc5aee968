"""LARS against its formula, step by step, and the linear scaling rule of the learning rate."""

import functools
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from orbitcl.losses import NTXentLoss
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.optimizers import LARS, scaled_lr

LR, MOMENTUM, WEIGHT_DECAY, TRUST = 0.5, 0.9, 1e-2, 0.02


def small_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    nn.init.zeros_(model[3].weight)  # ||w|| = 0 at the first step: the trust ratio is 1
    return model.double()


def reference_step(w, g, v, adapted: bool, nesterov: bool):
    """SimCLR's LARS for one tensor, from the formula, element by element in Python floats:
    returns (new w, new momentum buffer) as lists."""
    w, g, v = w.flatten().tolist(), g.flatten().tolist(), v.flatten().tolist()
    ratio = 1.0
    if adapted:
        g = [gi + WEIGHT_DECAY * wi for gi, wi in zip(g, w, strict=True)]
        w_norm = math.sqrt(sum(x * x for x in w))
        g_norm = math.sqrt(sum(x * x for x in g))
        if w_norm > 0 and g_norm > 0:
            ratio = TRUST * w_norm / g_norm
    v = [MOMENTUM * vi + LR * ratio * gi for vi, gi in zip(v, g, strict=True)]
    if nesterov:
        update = [MOMENTUM * vi + LR * ratio * gi for vi, gi in zip(v, g, strict=True)]
    else:
        update = v
    return [wi - ui for wi, ui in zip(w, update, strict=True)], v


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("exclude", [True, False])
def test_lars_matches_its_reference_step(nesterov, exclude):
    model = small_model()
    optimizer = LARS(
        model.parameters(),
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        trust_coefficient=TRUST,
        nesterov=nesterov,
        exclude_bias_and_norm=exclude,
    )
    names = dict(model.named_parameters())
    # Excluded from weight decay and the trust ratio: the biases and BatchNorm's weight.
    excluded = {name for name, w in names.items() if exclude and w.ndim == 1}
    assert excluded == ({"0.bias", "1.weight", "1.bias", "3.bias"} if exclude else set())
    x = torch.randn(16, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    buffers = {name: torch.zeros_like(w) for name, w in names.items()}
    for _ in range(3):  # the momentum buffer carries over
        optimizer.zero_grad()
        model(x).square().mean().backward()
        expected = {}
        for name, w in names.items():
            new_w, new_v = reference_step(w, w.grad, buffers[name], name not in excluded, nesterov)
            expected[name] = torch.tensor(new_w, dtype=w.dtype).view_as(w)
            buffers[name] = torch.tensor(new_v, dtype=w.dtype).view_as(w)
        optimizer.step()
        for name, w in names.items():
            torch.testing.assert_close(w.detach(), expected[name], rtol=1e-12, atol=1e-14)


def test_lars_trust_ratio_changes_the_step():
    # The same model, one step of LARS and of its plain-SGD special case: the layer adaptation
    # must show (a reference that ignored it would pass the test above only by accident).
    steps = {}
    for trust in (TRUST, None):
        model = small_model()
        nn.init.normal_(model[3].weight)
        if trust is None:
            optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        else:
            optimizer = LARS(model.parameters(), lr=LR, trust_coefficient=trust)
        x = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        model(x).square().mean().backward()
        before = model[0].weight.detach().clone()
        optimizer.step()
        steps[trust] = model[0].weight.detach() - before
    assert steps[None].abs().max() > 0
    assert not torch.allclose(steps[TRUST], steps[None])


@pytest.mark.parametrize(
    "field,value",
    [("lr", -1.0), ("momentum", 1.0), ("weight_decay", -0.1), ("trust_coefficient", 0.0)],
)
def test_lars_rejects_bad_values_naming_them(field, value):
    with pytest.raises(ValueError, match=rf"^{field}={value} is invalid"):
        LARS([nn.Parameter(torch.zeros(2))], **{"lr": 0.1, field: value})


def test_linear_scaling_rule():
    assert scaled_lr(0.3, 256) == 0.3
    assert scaled_lr(0.3, 4096) == pytest.approx(4.8)
    assert scaled_lr(0.3, 4096, "none") == 0.3
    with pytest.raises(ValueError, match="^lr_scaling='sqrt' is invalid"):
        scaled_lr(0.3, 4096, "sqrt")


def test_module_scales_the_lr_by_every_process_node_and_accumulated_batch():
    encoder = ConvEncoder(widths=[4])
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, hidden_dim=8, out_dim=4),
        NTXentLoss(0.5),
        optimizer=functools.partial(LARS, lr=0.3),
        lr_scaling="linear",
    )
    # 2 nodes x 4 devices (Lightning's world size), 64 images each, 2 batches accumulated.
    module.trainer = SimpleNamespace(
        world_size=8, accumulate_grad_batches=2, datamodule=SimpleNamespace(batch_size=64)
    )
    optimizer = module.configure_optimizers()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.3 * 64 * 8 * 2 / 256)
    with pytest.raises(ValueError, match="^lr_scaling='Linear' is invalid"):
        ContrastiveModule(encoder, module.projector, NTXentLoss(0.5), LARS, lr_scaling="Linear")

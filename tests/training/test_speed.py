"""The speed switches (`model.channels_last`, `model.compile`) change no result beyond float
rounding: the same losses over the first optimiser steps of a tiny CPU run, the same parameter
names."""

import shutil

import pytest
import torch
from hydra.utils import instantiate

from orbitcl.training.speed import apply_speed_switches


def first_losses(train_config, channels_last: bool = False, compile: bool = False, steps: int = 2):
    """Losses of the first `steps` AdamW steps of the default model and ORL on one fixed batch of
    2 x 64 8x8 views, and the encoder."""
    cfg = train_config("loss=orl")
    torch.manual_seed(0)  # the same initial weights in every call
    encoder = instantiate(cfg.model.encoder)
    projector = instantiate(cfg.model.projector, in_dim=encoder.out_dim)
    loss = instantiate(cfg.loss)
    apply_speed_switches(encoder, projector, channels_last=channels_last, compile=compile)
    views = torch.randn(2 * 64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW([*encoder.parameters(), *projector.parameters()], lr=1e-2)
    losses = []
    for _ in range(steps):
        z_a, z_b = projector(encoder(views)).chunk(2)  # (64, d) each
        value = loss(z_a, z_b)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return losses, encoder


def test_config_switches_are_off_by_default(train_config):
    for dataset in ("digits", "cifar10"):
        model = train_config(f"dataset={dataset}").model
        assert model.channels_last is False and model.compile is False


def test_channels_last_gives_the_eager_losses(train_config):
    eager, _ = first_losses(train_config)
    nhwc, encoder = first_losses(train_config, channels_last=True)
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert eager[0] != eager[1]  # the step changed the weights, and both runs saw that
    torch.testing.assert_close(nhwc, eager, rtol=1e-5, atol=0)


@pytest.mark.slow  # compiling takes a minute or more on a 2-core CPU
@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile's CPU backend (inductor) needs a C++ compiler, and none is installed",
)
def test_compile_gives_the_eager_losses_and_parameter_names(train_config):
    eager, eager_encoder = first_losses(train_config)
    compiled, encoder = first_losses(train_config, compile=True)
    assert encoder._compiled_call_impl is not None  # compiled indeed
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=0)
    assert encoder.state_dict().keys() == eager_encoder.state_dict().keys()  # checkpoints load

"""The collapse monitor (orbitcl.callbacks.collapse) in process on digits: it logs collapse/std
for both spaces, and warns, naming the run, exactly when the projections collapse."""

import logging
import math

import pytest
import torch
from helpers.callback_harness import digits_harness

from orbitcl.callbacks import CollapseMonitor, names
from orbitcl.data import DigitsDataModule
from orbitcl.metrics.collapse import collapse_std

LOGGER = "orbitcl.callbacks.collapse"


class Collapsed(torch.nn.Module):
    """A projector whose outputs are one vector for every image: complete collapse."""

    def forward(self, h):  # (B, e) -> (B, 8)
        return torch.ones(len(h), 8)


def test_it_logs_both_spaces_on_the_fixed_images(tmp_path, caplog):
    trainer, module = digits_harness(tmp_path, DigitsDataModule(num_workers=0), global_step=5)
    callback = CollapseMonitor(n_images=100)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        callback.on_validation_epoch_end(trainer, module)
    assert sorted(module.logged) == [names.collapse_metric("std", "encoder"), names.COLLAPSE_STD]
    images = callback.images(trainer)  # uint8; the eval transform of each is what is embedded
    transformed = torch.stack([trainer.datamodule.eval_transform(image) for image in images])
    with torch.no_grad():
        z = module.projector(module.encoder(transformed))
    assert module.logged[names.COLLAPSE_STD] == pytest.approx(collapse_std(z), rel=1e-5)
    # A random linear projector of digits is far from collapse: near 1/sqrt(8), and no warning.
    assert 0.3 / math.sqrt(8) < module.logged[names.COLLAPSE_STD] <= 1.01 / math.sqrt(8)
    assert "collapsing" not in caplog.text


def test_a_collapsed_run_is_named_once_until_it_recovers(tmp_path, caplog):
    trainer, module = digits_harness(tmp_path, DigitsDataModule(num_workers=0), global_step=5)
    healthy = module.projector
    module.projector = Collapsed()
    callback = CollapseMonitor(n_images=50, threshold_fraction=0.5)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        callback.on_validation_epoch_end(trainer, module)
        callback.on_validation_epoch_end(trainer, module)  # still collapsed: no second line
        module.projector = healthy
        callback.on_validation_epoch_end(trainer, module)
        module.projector = Collapsed()
        trainer.global_step = 9
        callback.on_validation_epoch_end(trainer, module)
    lines = [r.getMessage() for r in caplog.records if "collapsing" in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith(f"run {tmp_path} is collapsing at step 5: collapse/std = 0 ")
    assert "below 0.1768" in lines[0] and "d = 8" in lines[0]  # 0.5 / sqrt(8)
    assert "at step 9" in lines[1]
    assert module.logged[names.COLLAPSE_STD] == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="threshold_fraction=1.5 is invalid"):
        CollapseMonitor(threshold_fraction=1.5)
    with pytest.raises(ValueError, match="n_images=1 is invalid"):
        CollapseMonitor(n_images=1)

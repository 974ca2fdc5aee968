"""The tension diagnostics stay with ORL: asked of a loss without negatives they say so once,
naming the loss, and measure nothing, while the spectrum's other metrics and the collapse
monitor still do; losses with negatives are measured (in process on digits)."""

import logging

import pytest
import torch
from helpers.callback_harness import digits_harness

from orbitcl import losses
from orbitcl.callbacks import CollapseMonitor, SpectrumDiagnostics, TensionMonitor, names
from orbitcl.callbacks.requirements import tension_applies
from orbitcl.data import DigitsDataModule

LOGGER = "orbitcl.callbacks.requirements"
WITHOUT_NEGATIVES = [
    losses.VICRegLoss(),
    losses.BarlowTwinsLoss(),
    losses.SimSiamLoss(),
    losses.BYOLLoss(),
]
WITH_NEGATIVES = [
    losses.NTXentLoss(0.5),
    losses.ORLLoss(),
    losses.NPairLoss(),
    losses.LiftedStructuredLoss(),
    losses.MoCoLoss(dim=8),
]


@pytest.mark.parametrize("loss", WITHOUT_NEGATIVES, ids=lambda loss: loss.__class__.__name__)
def test_losses_without_negatives_are_named_once(loss, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert not tension_applies("the tension monitor (TensionMonitor)", loss)
    assert caplog.messages == [
        "the tension monitor (TensionMonitor) left out: the tension is ORL's weight of an "
        f"anchor's negatives (docs/orl.md), and the loss {loss.__class__.__name__} contrasts "
        "no negatives"
    ]


@pytest.mark.parametrize("loss", WITH_NEGATIVES, ids=lambda loss: loss.__class__.__name__)
def test_losses_with_negatives_are_measured_silently(loss, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert tension_applies("x", loss) and tension_applies("x", torch.nn.MSELoss())
    assert not caplog.messages


def batch_outputs(n: int = 6, d: int = 8) -> dict:
    torch.manual_seed(0)
    return {"projections": [torch.randn(n, d), torch.randn(n, d)]}


def test_with_vicreg_only_the_tension_is_left_out(tmp_path, caplog):
    """(With NT-Xent, tests/callbacks/test_diagnostics.py's runs log all of it.)"""
    loss = losses.VICRegLoss()
    trainer, module = digits_harness(tmp_path, DigitsDataModule(num_workers=0), global_step=2)
    module.loss = loss
    trainer.current_epoch = 0
    logged = []
    trainer.loggers = [type("L", (), {"log_metrics": lambda self, m, step: logged.append(m)})()]
    monitor = TensionMonitor(every_n_steps=1)
    spectrum = SpectrumDiagnostics(n_anchors=60, n_views=2)
    collapse = CollapseMonitor(n_images=60)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for stage in ("fit", "validate"):  # train.py validates again after fit: still one line
            monitor.setup(trainer, module, stage)
            spectrum.setup(trainer, module, stage)
        monitor.on_train_batch_end(trainer, module, batch_outputs(), None, 0)
        monitor.on_train_epoch_end(trainer, module)
        spectrum.on_validation_epoch_end(trainer, module)
        collapse.on_validation_epoch_end(trainer, module)
    assert len(caplog.messages) == 2  # the monitor's and the class tension's, once each
    assert caplog.messages[1].startswith("the class tension of SpectrumDiagnostics")
    assert all("loss VICRegLoss contrasts no negatives" in m for m in caplog.messages)
    assert not logged and not (tmp_path / "plots" / "tension_step000002.png").exists()
    assert not [name for name in module.logged if "tension" in name]
    for kept in (names.RANKME, names.NC1, names.COLLAPSE_STD):  # the rest with any loss
        assert kept in module.logged

"""The spectrum callback (orbitcl.callbacks.spectrum) in process on digits: it logs every metric
for both spaces, draws the collapse picture with one column per validation and the class tension
heatmap, and without class labels skips only the label parts, saying so."""

import logging

import pytest
from helpers.callback_harness import digits_harness

from orbitcl.callbacks import SpectrumDiagnostics, names
from orbitcl.data import DigitsDataModule

SPECTRUM = ["rankme", "alpha", "lidar"]
CLASSES = ["nc1", "nc2_equinorm", "nc2_equiangularity"]
TENSION = ["tension_confusion_spearman", "share_confusion_spearman", "tension_image_cos_spearman"]


def setup(tmp_path, datamodule):
    return digits_harness(tmp_path, datamodule, global_step=3)


def test_callback_logs_every_metric_and_draws_both_plots(tmp_path):
    trainer, module = setup(tmp_path, DigitsDataModule(num_workers=0))
    callback = SpectrumDiagnostics(n_anchors=120, n_views=3)
    callback.on_validation_epoch_end(trainer, module)
    trainer.global_step = 6
    callback.on_validation_epoch_end(trainer, module)
    expected = [names.spectrum_metric(m, s) for m in SPECTRUM for s in ("encoder", "projector")]
    expected += [names.class_metric(m, s) for m in CLASSES for s in ("encoder", "projector")]
    expected += [names.class_metric(m) for m in TENSION]
    assert sorted(module.logged) == sorted(expected)
    assert 1 <= module.logged["spectrum/rankme"] <= 8
    assert 1 <= module.logged["spectrum/encoder/lidar"] <= 16
    assert module.logged["classes/nc1"] > 0
    assert callback.steps == [3, 6]
    assert [len(h) for h in callback.history.values()] == [2, 2]
    plots = tmp_path / "plots"
    assert (plots / "spectrum_step000006.png").is_file()
    assert (plots / "class_tension_step000006.png").is_file()


class Unlabelled(DigitsDataModule):
    num_classes = 0


def test_without_labels_only_the_label_parts_are_skipped(tmp_path, caplog):
    trainer, module = setup(tmp_path, Unlabelled(num_workers=0))
    callback = SpectrumDiagnostics(n_anchors=50, n_views=2)
    with caplog.at_level(logging.INFO, logger="orbitcl.callbacks.spectrum"):
        callback.on_validation_epoch_end(trainer, module)
    assert sorted(module.logged) == sorted(
        names.spectrum_metric(m, s) for m in SPECTRUM for s in ("encoder", "projector")
    )
    assert "skipped: no class labels" in caplog.text
    assert (tmp_path / "plots" / "spectrum_step000003.png").is_file()
    assert not (tmp_path / "plots" / "class_tension_step000003.png").exists()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="n_views=1 is invalid"):
        SpectrumDiagnostics(n_views=1)
    with pytest.raises(ValueError, match="alpha_end=6 is invalid"):
        SpectrumDiagnostics(alpha_start=6, alpha_end=6)  # alpha-ReQ needs 2 ranks to fit

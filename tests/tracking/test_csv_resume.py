"""A resumed run's metrics.csv continues the rows it logged before its checkpoint, and reads as
the uninterrupted run's (Lightning's own CSVLogger starts the file afresh)."""

import csv
from pathlib import Path

import pytest
from helpers.in_process import run_dir_overrides
from helpers.paths import CONF_DIR
from helpers.stopping import stop_after
from hydra import compose, initialize_config_dir

from orbitcl.tracking.csv_logger import ResumableCSVLogger
from orbitcl.training.fit import train

# Three epochs of digits (5 steps each), every step logged; diagnostics off. Whole epochs: a
# resume with `trainer.limit_train_batches` cutting epochs short is not exact (docs/reliability.md).
THREE_EPOCHS = [
    "model=conv_small",
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "dataset.num_workers=0",
    *(f"callbacks.{name}=null" for name in ("tension", "orbit", "class_geometry")),
    *(f"callbacks.{name}=null" for name in ("similarity", "umap", "spectrum", "collapse")),
]


def run(run_dir: Path, *overrides: str) -> list[dict[str, str]]:
    run_dir.mkdir(exist_ok=True)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [*THREE_EPOCHS, *run_dir_overrides(run_dir), *overrides])
    train(cfg, run_dir)
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def losses(rows: list[dict[str, str]]) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]


def test_a_resumed_run_continues_its_metrics_csv(tmp_path):
    whole = run(tmp_path / "whole")
    resumed_dir = tmp_path / "resumed"
    before = run(resumed_dir, *stop_after(2))  # checkpoint at global step 10
    assert [step for step, _ in losses(before)] == list(range(10))
    # As if killed after logging step 10 but before the next checkpoint: the resumed run logs
    # step 10 again, and the killed run's row must go.
    with open(resumed_dir / "metrics.csv", "a", newline="") as file:
        csv.DictWriter(file, fieldnames=list(before[0])).writerow(
            {key: "9.99" for key in before[0]} | {"step": "10"}
        )
    after = run(resumed_dir)
    assert [step for step, _ in losses(after)] == [step for step, _ in losses(whole)]
    assert [step for step, _ in losses(after)] == list(range(15))
    # The resumed run is the uninterrupted one (tests/training/test_resume.py): so are its rows.
    assert [x for _, x in losses(after)] == pytest.approx([x for _, x in losses(whole)], rel=1e-6)
    validations = [int(r["step"]) for r in after if r.get("val/knn_acc")]
    assert validations == [int(r["step"]) for r in whole if r.get("val/knn_acc")] == [4, 9, 14]
    assert "9.99" not in (resumed_dir / "metrics.csv").read_text()


def test_resume_at_must_come_before_anything_is_logged(tmp_path):
    logger = ResumableCSVLogger(save_dir=str(tmp_path), name="", version="")
    logger.log_metrics({"a": 1.0}, step=0)
    with pytest.raises(RuntimeError, match="before anything is logged"):
        logger.resume_at(3)

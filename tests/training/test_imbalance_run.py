"""The command line on class-imbalanced and continuous-label data: an imbalanced MNIST X-CLR run
with class geometry on (class counts kept, size correlation logged, its optimum compared), a
y-Aware run on rotated MNIST, and a subset the data cannot give stopped before anything is
written."""

import json
import math
import os
from pathlib import Path

import pytest
import yaml
from helpers.train_cli import SMOKE, read_csv, run_module

from orbitcl.data import load_mnist
from orbitcl.data.imbalance import long_tailed_counts
from orbitcl.experiments import optimum_comparison
from orbitcl.experiments.runs import load_run

DATA_DIR = Path(os.environ["ORBITCL_DATA_DIR"])
pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "MNIST" / "raw").is_dir(), reason=f"no MNIST in {DATA_DIR}"
)
# +debug=smoke with the class geometry callback on, on 20 test images per class, smaller batches.
QUICK = [
    "dataset=mnist",
    "logger=csv",
    "trainer.max_steps=3",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false",
    "dataset.num_workers=0",
    "dataset.batch_size=64",  # a quick step; the kNN bank and queries are 2 x 256 images
    "dataset.eval_batch_size=256",
    "callbacks.tension=null",
    "callbacks.orbit=null",
    "callbacks.umap=null",
    "callbacks.similarity=null",
    "callbacks.spectrum=null",
    "callbacks.class_geometry.n_per_class=20",
]
CLASSES = ["simplex_deviation", "within_cos", "between_cos", "gap", "prototype_cos_std"]
CLASSES += ["size_correlation"]


def test_imbalanced_xclr_run_keeps_counts_and_logs_size_correlation(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["loss=xclr", "dataset.imbalance_ratio=10", f"hydra.run.dir={run_dir}"]
    result = run_module(*QUICK, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    available = load_mnist(DATA_DIR, train=True, download=False)[1].bincount().tolist()
    counts = long_tailed_counts(available, 10)
    record = json.loads((run_dir / "class_counts.json").read_text())
    assert record["class_counts"] == counts and record["imbalance_ratio"] == 10
    assert yaml.safe_load((run_dir / "hparams.yaml").read_text())["train_class_counts"] == counts
    log = (run_dir / "train.log").read_text()
    assert "Class similarity (cosines of the mean training images)" in log  # X-CLR's class_means
    rows = read_csv(run_dir / "metrics.csv")
    last = {k: float(v) for row in rows for k, v in row.items() if k.startswith("classes/") and v}
    assert sorted(last) == sorted(f"classes/{name}" for name in CLASSES)
    assert -1 <= last["classes/size_correlation"] <= 1
    assert (run_dir / "plots" / "class_geometry_step000003.png").is_file()

    # orbitcl.analyze's class geometry: the trained run beside its loss's optimum.
    run = load_run(run_dir)
    row = optimum_comparison.compare(run, "xclr", n_per_class=20, steps=200)
    assert row["class_counts"] == counts and row["test_images"] == 200
    assert row["predicted_counts"] == optimum_comparison.scaled_counts(counts, 10)
    assert set(row["trained"]) == set(row["predicted"]) == set(CLASSES)
    assert len(row["predicted_cosines"]) == 10 and -1 <= row["agreement"]["pearson"] <= 1
    optimum_comparison.write([row], tmp_path)
    table = (tmp_path / "class_geometry.md").read_text()
    assert "| xclr | trained |" in table and "| xclr | predicted |" in table
    assert (tmp_path / "class_geometry.png").is_file()


@pytest.mark.slow  # ~22 s: rotating 70,000 images, 3 steps; the parts are tested on their own
def test_y_aware_trains_on_rotated_mnist(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["loss=y_aware", "dataset=rotated_mnist", "dataset.label_space=line"]
    result = run_module(*SMOKE, *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(run_dir / "metrics.csv")
    losses = [float(row["train/loss"]) for row in rows if row["train/loss"]]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert any(row["val/knn_acc"] for row in rows)  # kNN on the digits of rotated images
    assert "val/linear_acc" not in rows[0]  # its training labels are angles: no classifier
    assert not (run_dir / "class_counts.json").exists()
    assert (
        "callbacks.online_linear (OnlineLinearClassifier) skipped"
        in (run_dir / "train.log").read_text()
    )


def test_a_subset_the_data_cannot_give_stops_before_anything_is_written(tmp_path):
    run_dir = tmp_path / "run"
    too_many = "dataset.class_counts=[6000,10,10,10,10,10,10,10,10,10]"
    result = run_module(*SMOKE, too_many, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert "orbitcl: error: dataset.class_counts=[6000, 10, " in result.stderr
    assert "class 0 asks for 6000 images and has 5923" in result.stderr
    assert not run_dir.exists()

"""The similarity statistics callback and `train/mi_lower_bound`, end to end: one short MNIST run
of the command line with ORL over cross-view negatives (the issue's "done when" run, shortened)."""

import csv
import math
import os
import subprocess
import sys

import pytest

from orbitcl.callbacks import SimilarityStatistics, names

STATISTICS = [
    f"{kind}_{stat}" for kind in ("pos", "neg_cross", "neg_within") for stat in ("mean", "var")
]
REFERENCES = ["bound_neg_optimum", "bound_pos_mean", "bound_neg_var_low", "bound_neg_var_high"]
BATCH, N_TRAIN = 256, 60_000  # MNIST's default batch and training split


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("similarity") / "run"
    overrides = [
        "loss=orl",
        "loss.negatives=cross_view",
        "dataset=mnist",
        "trainer.max_steps=3",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        "trainer.limit_val_batches=2",
        "trainer.enable_progress_bar=false",
        "dataset.num_workers=0",
        "callbacks.tension=null",
        "callbacks.orbit=null",
        "callbacks.class_geometry=null",
        "callbacks.umap=null",
        "callbacks.similarity.n_images=300",
        "callbacks.similarity.every_n_steps=2",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "orbitcl.train", *overrides],
        cwd=run_dir.parent,
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def rows(run_dir, name):
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f) if r.get(name)]


def test_every_statistic_and_reference_is_logged(run_dir):
    for name in STATISTICS + REFERENCES:
        # The first step and every 2 after: steps 1 and 3; the fixed images once, at the end.
        assert [step for step, _ in rows(run_dir, f"similarity/batch/{name}")] == [1, 3], name
        assert len(rows(run_dir, names.similarity_metric(name))) == 1, name
    assert (run_dir / "plots" / "similarity_step000003.png").read_bytes()[:4] == b"\x89PNG"
    for batch in (False, True):
        value = {n: rows(run_dir, names.similarity_metric(n, batch))[-1][1] for n in REFERENCES}
        stats = {n: rows(run_dir, names.similarity_metric(n, batch))[-1][1] for n in STATISTICS}
        assert value["bound_neg_optimum"] == pytest.approx(-1 / (N_TRAIN - 1))
        m = BATCH if batch else 300  # Thm 5.2 over the images measured
        assert value["bound_pos_mean"] == pytest.approx(1 + stats["neg_cross_mean"] + 1 / (m - 1))
        assert stats["pos_mean"] <= value["bound_pos_mean"]
        low = (N_TRAIN - BATCH) / ((BATCH - 1) * (N_TRAIN - 1) ** 2)
        assert value["bound_neg_var_low"] == pytest.approx(low)
        assert value["bound_neg_var_high"] == pytest.approx(N_TRAIN * low)
        assert all(stats[f"{kind}_var"] >= 0 for kind in ("pos", "neg_cross", "neg_within"))
        assert -1 <= stats["neg_cross_mean"] < stats["pos_mean"] <= 1


def test_mi_lower_bound_is_log_k_plus_one_minus_the_loss(run_dir):
    """Cross-view negatives: K + 1 = N = 256 candidates per anchor, so log(256) - loss."""
    bound = dict(rows(run_dir, names.MI_LOWER_BOUND))
    loss = dict(rows(run_dir, names.TRAIN_LOSS))
    assert len(bound) == 3 and bound.keys() == loss.keys()
    for step, value in bound.items():
        assert value == pytest.approx(math.log(BATCH) - loss[step], abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_images": 1}, "n_images=1"), ({"every_n_steps": 0}, "every_n_steps=0")],
)
def test_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimilarityStatistics(**kwargs)

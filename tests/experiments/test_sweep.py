"""Sweeps through the real command line (`python -m orbitcl.train -m ...`): every job records its
outcome, a failing job does not stop the others, the report lands in the sweep directory, and
the W&B runs of a sweep share a group."""

import json
from pathlib import Path

import pytest
from helpers.train_cli import read_csv, run_module
from helpers.wandb_records import runs as wandb_runs

from orbitcl import report

FAST = [  # MNIST for a few steps, kNN on 2 batches; the orbit and tension metrics stay on
    "dataset=mnist",
    "dataset.num_workers=0",
    "trainer.max_steps=10",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=2",
    "callbacks.umap=null",
    "callbacks.similarity=null",
    "callbacks.orbit.n_anchors=20",
    "callbacks.tension.every_n_steps=5",
]


def last_logged(metrics_csv: Path, key: str) -> float:
    return [float(row[key]) for row in read_csv(metrics_csv) if row.get(key)][-1]


def test_sweep_goes_on_past_a_failed_job_and_writes_the_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "-m",
        "loss=ntxent,orl",
        "loss.temperature=0.2,-1",  # -1 fails before training: ConfigError
        *FAST,
        "logger=csv",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    # The sweep ran all 4 jobs, wrote the report, and says that 2 failed with exit status 1.
    assert result.returncode == 1, result.stderr[-3000:]
    assert "2 of 4 jobs did not finish" in result.stderr
    assert "Traceback" not in result.stderr
    rows = read_csv(sweep_dir / "sweep_report.csv")
    assert [(r["loss"], r["loss.temperature"], r["status"]) for r in rows] == [
        ("ntxent", "0.2", "ok"),
        ("ntxent", "-1", "failed"),
        ("orl", "0.2", "ok"),
        ("orl", "-1", "failed"),
    ]
    for row in rows:
        job_dir = sweep_dir / row["job"]
        outcome = json.loads((job_dir / "result.json").read_text())
        swept = {"loss": row["loss"], "loss.temperature": float(row["loss.temperature"])}
        assert outcome["swept"] == swept
        if row["status"] == "failed":
            assert outcome["exit_code"] == 2  # what a single run exits with
            assert "loss.temperature=-1 is invalid" in row["error"]
            assert row["val/knn_acc"] == ""
            continue
        # Every reported metric is the job's final logged value (its own metrics.csv).
        assert row["error"] == "" and float(row["wall_time_s"]) > 0
        for metric in report.METRICS:
            assert float(row[metric]) == last_logged(job_dir / "metrics.csv", metric), metric
        assert (job_dir / "checkpoints" / "last.ckpt").is_file()
    assert rows[0]["val/knn_acc"] != rows[2]["val/knn_acc"]  # two losses, two models

    text = (sweep_dir / "sweep_report.md").read_text()
    assert "4 jobs (2 ok, 2 failed)" in text and "## Mean ± 95% CI over seed" in text
    assert (sweep_dir / "sweep_report_val_knn_acc.png").is_file()
    assert (sweep_dir / "sweep_report_tension_mean.png").is_file()

    # The report is a function of the directory: the command line rebuilds the same CSV.
    first = (sweep_dir / "sweep_report.csv").read_text()
    (sweep_dir / "sweep_report.csv").unlink()
    rebuilt = run_module(str(sweep_dir), module="orbitcl.report", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (sweep_dir / "sweep_report.csv").read_text() == first


def test_wandb_runs_of_a_sweep_share_a_group(tmp_path):
    """Offline W&B: each job's run is named by its swept values and carries them in its config,
    all runs (a failed one too, finished as failed) share the sweep's name as group, and one more
    run of the group holds the report's tables."""
    sweep_dir = tmp_path / "my-sweep"
    result = run_module(
        "-m",
        "loss=ntxent,orl",
        # 1e+30 fails in training, after the W&B run has started: a non-finite loss at step 1
        # (a bad config fails before any run starts, tests/training/test_resume_refused.py)
        "optim.optimizer.lr=0.001,1e+30",
        "trainer.max_steps=2",  # 8x8 digits: seconds per job
        "callbacks.umap=null",
        "callbacks.orbit=null",
        "callbacks.class_geometry=null",
        "callbacks.spectrum=null",
        "callbacks.similarity=null",
        "logger=wandb",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    runs = wandb_runs(sweep_dir)
    rates = ("0.001", "1e+30")
    names = [f"loss={loss},optim.optimizer.lr={lr}" for loss in ("ntxent", "orl") for lr in rates]
    assert sorted(runs) == sorted([*names, "sweep-report"])
    assert {info["group"] for info in runs.values()} == {"my-sweep"}
    for name in names:
        loss, lr = (part.split("=")[1] for part in name.split(","))
        info = runs[name]
        swept = info["config"]["swept"]
        assert swept.keys() == {"loss", "optim.optimizer.lr"} and swept["loss"] == loss
        assert float(swept["optim.optimizer.lr"]) == float(lr)
        assert info["exit_code"] == (0 if lr == "0.001" else 3)  # finished either way
        assert ("val/knn_acc" in info["history"]) == (lr == "0.001")
    summary = runs["sweep-report"]
    assert summary["job_type"] == "sweep-report" and summary["exit_code"] == 0
    assert {"sweep/jobs/_type", "sweep/summary/_type"} <= summary["history"]


@pytest.mark.slow
def test_issue_acceptance_sweep(tmp_path):
    """The issue's command: 2 losses x 2 temperatures on MNIST, 10 steps each, all finish."""
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "-m",
        "loss=ntxent,orl",
        "loss.temperature=0.2,0.5",
        "dataset=mnist",
        "trainer.max_steps=10",
        "logger=csv",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(sweep_dir / "sweep_report.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert (sweep_dir / "sweep_report.md").is_file()


@pytest.mark.parametrize(
    "preset,dataset,encoder,batch_size,epochs",
    [
        ("orl_mnist", "MNISTDataModule", "ConvEncoder", 256, 20),
        ("orl_cifar10", "CIFAR10DataModule", "TorchvisionEncoder", 512, 1000),
    ],
)
def test_presets_set_the_write_up_setup_and_yield_to_the_command_line(
    train_config, preset, dataset, encoder, batch_size, epochs
):
    cfg = train_config(f"+experiment={preset}")
    assert cfg.dataset._target_.endswith(dataset) and cfg.model.encoder._target_.endswith(encoder)
    assert cfg.loss._target_ == "orbitcl.losses.ORLLoss" and cfg.loss.temperature == 0.5
    assert (cfg.dataset.batch_size, cfg.dataset.n_views, cfg.trainer.max_epochs) == (
        batch_size,
        2,
        epochs,
    )
    # The write-up's figures: 200 anchors x 10 views, UMAP with 5 views per image.
    assert (cfg.callbacks.orbit.n_anchors, cfg.callbacks.orbit.n_views) == (200, 10)
    assert cfg.callbacks.umap.n_views == 5
    cfg = train_config(f"+experiment={preset}", "loss=ntxent", "loss.temperature=0.2")
    assert cfg.loss._target_ == "orbitcl.losses.NTXentLoss" and cfg.loss.temperature == 0.2

"""Sweeps under hydra-submitit-launcher: `submitit_local` runs the jobs as submitit jobs on this
machine, with the usual result.json and report; the SLURM config (`hydra/launcher=slurm`) is
composed and checked here, not run: there is no SLURM on this machine."""

import json

import pytest
from helpers.train_cli import read_csv, run_module
from hydra.utils import instantiate

from orbitcl.experiments.launchers import CheckLauncher, check_slurm_jobs
from orbitcl.training.config import ConfigError


def test_submitit_local_runs_the_sweep_and_writes_the_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "-m",
        "hydra/launcher=submitit_local",
        "loss=ntxent,orl",
        "trainer.max_steps=3",
        "logger=csv",
        "+debug=smoke",  # digits, diagnostics off
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in result.stdout
    rows = read_csv(sweep_dir / "sweep_report.csv")
    assert [(row["loss"], row["status"]) for row in rows] == [("ntxent", "ok"), ("orl", "ok")]
    for num, row in enumerate(rows):
        outcome = json.loads((sweep_dir / row["job"] / "result.json").read_text())
        assert (outcome["job_num"], outcome["swept"]) == (num, {"loss": row["loss"]})
        assert float(row["val/knn_acc"]) == outcome["metrics"]["val/knn_acc"] > 0
    # Each job ran as a submitit job of its own, in its own process, logged by submitit.
    assert len(list(sweep_dir.glob(".submitit/*/*_0_result.pkl"))) == 2


@pytest.fixture
def slurm_config(train_config):
    """The composed config of a sweep on SLURM, as the launching process sees it."""

    def _compose(*overrides: str):
        return train_config("hydra/launcher=slurm", *overrides, hydra=True)

    return _compose


def test_the_slurm_launcher_runs_one_task_per_gpu_and_requeues(slurm_config):
    cfg = slurm_config()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.timeout_min == 240 and launcher.max_num_timeout > 0
    check_slurm_jobs(cfg)
    # A 4-GPU DDP job: 4 tasks, which trainer=ddp (devices -1: every GPU of the task's node)
    # takes as its 4 processes. The plugin builds its launcher from the composed values.
    cfg = slurm_config("hydra.launcher.gpus_per_node=4", "trainer=ddp")
    assert cfg.hydra.launcher.tasks_per_node == 4
    check_slurm_jobs(cfg)
    assert instantiate(cfg.hydra.launcher).params["tasks_per_node"] == 4


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["hydra.launcher.gpus_per_node=4", "hydra.launcher.tasks_per_node=1"],
            "hydra.launcher.tasks_per_node=1 is invalid: must equal hydra.launcher.gpus_per_node=4",
        ),
        (
            ["hydra.launcher.gpus_per_node=4", "trainer.devices=2"],
            "trainer.devices=2 is invalid with hydra.launcher.tasks_per_node=4: must be 4 or -1",
        ),
        (
            ["hydra.launcher.nodes=2", "trainer=ddp"],
            "trainer.num_nodes=1 is invalid with hydra.launcher.nodes=2: must be 2",
        ),
    ],
)
def test_a_slurm_job_lightning_would_reject_stops_the_sweep_before_submitting(
    slurm_config, overrides, message, capsys
):
    cfg = slurm_config(*overrides)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        check_slurm_jobs(cfg)
    with pytest.raises(SystemExit) as stopped:  # what Hydra calls before the launcher runs
        CheckLauncher().on_multirun_start(config=cfg)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith(f"orbitcl: error: {message}")


def test_other_launchers_are_not_checked(train_config):
    cfg = train_config("trainer.devices=2", hydra=True)  # Hydra's own launcher: nothing to match
    check_slurm_jobs(cfg)

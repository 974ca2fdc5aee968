"""Sweeps resume: the same multirun command with the same `hydra.sweep.dir` skips the jobs that
finished with the same config, leaving their files as they were, resumes an interrupted one from
its own last.ckpt and runs the rest; a job whose config changed runs again."""

import json
import logging
import os
import signal
import time

import pytest
from helpers.train_cli import read_csv, run_module, start_module
from omegaconf import OmegaConf

from orbitcl.training.job import finished_result

CONFIG = {
    "seed": 0,
    "loss": {"_target_": "orbitcl.losses.ORLLoss", "temperature": 0.2},
    "dataset": {"data_dir": "/data", "num_workers": 2},
    "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "/runs/0"},
}


def write_result(job_dir, status="ok", config=CONFIG):
    job_dir.mkdir(parents=True, exist_ok=True)
    result = {"status": status, "metrics": {"val/knn_acc": 0.9}, "config": config}
    (job_dir / "result.json").write_text(json.dumps(result))


def test_a_finished_job_is_done_only_with_the_same_config(tmp_path, caplog):
    write_result(tmp_path)
    assert finished_result(tmp_path, OmegaConf.create(CONFIG))["metrics"] == {"val/knn_acc": 0.9}
    # Where the data and the logs are, how data is read: still the same experiment.
    moved = OmegaConf.create(CONFIG)
    moved.dataset.data_dir, moved.dataset.num_workers, moved.logger = "/elsewhere", 0, None
    assert finished_result(tmp_path, moved) is not None
    # Anything else runs the job again, saying what differs.
    changed = OmegaConf.create(CONFIG)
    changed.loss.temperature = 0.5
    with caplog.at_level(logging.WARNING):
        assert finished_result(tmp_path, changed) is None
    assert "loss.temperature: 0.2 in the result.json, 0.5 now" in caplog.text


@pytest.mark.parametrize(
    "status,config", [("failed", CONFIG), ("interrupted", CONFIG), ("ok", None)]
)
def test_a_job_that_did_not_finish_or_recorded_no_config_runs(tmp_path, status, config):
    write_result(tmp_path, status, config)
    assert finished_result(tmp_path, OmegaConf.create(CONFIG)) is None


def test_a_job_without_a_readable_result_runs(tmp_path):
    assert finished_result(tmp_path, OmegaConf.create(CONFIG)) is None  # none yet
    (tmp_path / "result.json").write_text('{"status": "ok", "met')  # cut short
    assert finished_result(tmp_path, OmegaConf.create(CONFIG)) is None


def files(job_dir):
    """Every file under a job directory: its modification time (ns) and contents."""
    return {
        path.relative_to(job_dir).as_posix(): (path.stat().st_mtime_ns, path.read_bytes())
        for path in job_dir.rglob("*")
        if path.is_file()
    }


def test_a_killed_sweep_runs_only_its_remaining_jobs_when_started_again(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = ["-m", "loss.temperature=0.2,0.5,1.0", "+debug=smoke"]  # 3 jobs
    # 3 digits steps each, a checkpoint after every step: job 1 can be killed mid-run.
    sweep += ["+callbacks.checkpoint.every_n_train_steps=1", f"hydra.sweep.dir={sweep_dir}"]

    # Killed (SIGKILL, with every process it started) once job 0 has finished and job 1 has
    # written its first checkpoint.
    first = start_module(*sweep, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not list(sweep_dir.glob("1_*/checkpoints/last.ckpt")):
        assert first.poll() is None, (tmp_path / "orbitcl.train.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "job 1 wrote no checkpoint in 5 minutes"
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    job_0, job_1 = next(sweep_dir.glob("0_*")), next(sweep_dir.glob("1_*"))
    assert json.loads((job_0 / "result.json").read_text())["status"] == "ok"
    assert [p.parent for p in sweep_dir.glob("*/result.json")] == [job_0], "job 1 was not cut"
    before = files(job_0)

    again = run_module(*sweep, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"job 0 finished before with this config: skipped ({job_0})" in again.stdout
    assert again.stdout.count("kNN accuracy (") == 2  # jobs 1 and 2 trained, job 0 did not
    assert (
        f"Resuming from {job_1 / 'checkpoints' / 'last.ckpt'}" in (job_1 / "train.log").read_text()
    )
    rows = read_csv(sweep_dir / "sweep_report.csv")
    assert [(r["loss.temperature"], r["status"]) for r in rows] == [
        ("0.2", "ok"),
        ("0.5", "ok"),
        ("1.0", "ok"),
    ]
    # Job 0's files are untouched; only Hydra rewrites its own .hydra/ files, with the same
    # config and overrides (the rest of hydra.yaml is the launching process's: time, job id).
    after = files(job_0)
    assert after.keys() == before.keys()
    for name, (mtime, contents) in before.items():
        if not name.startswith(".hydra/"):
            assert after[name] == (mtime, contents), name
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert after[name][1] == before[name][1], name

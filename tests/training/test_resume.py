"""Kill -9 and resume: the resumed run ends with the weights of an uninterrupted one (BYOL in the
default run: encoder, projector, predictor, EMA target and its schedule's step; NT-Xent, slow),
and (slow) logs into the same offline W&B run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Diagnostics plots are switched off: they do not touch the weights and only cost time here.
COMMON = [
    "trainer.max_epochs=4",
    "logger=csv",
    "callbacks.umap=null",
    "callbacks.orbit=null",
    "callbacks.class_geometry=null",
    "callbacks.spectrum=null",
    "callbacks.tension=null",
    "callbacks.similarity=null",
]


def command(run_dir, *extra):
    return [sys.executable, "-m", "orbitcl.train", *COMMON, f"hydra.run.dir={run_dir}", *extra]


def wandb_command(run_dir):
    return command(run_dir, "logger=wandb")


def env():
    return {**os.environ, "WANDB_MODE": "offline"}


def weights(run_dir):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["global_step"], checkpoint["state_dict"]


def kill_after_second_epoch(run_dir, make_command=command):
    process = subprocess.Popen(
        make_command(run_dir), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not list(run_dir.glob("checkpoints/epoch001-*.ckpt")):
        assert process.poll() is None and time.monotonic() < deadline, "no epoch-2 checkpoint"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed mid-run, not finished
    wait_for_orphans(process.pid)


def wait_for_orphans(pid: int, timeout: float = 60.0) -> None:
    """Waits until no process started with `--pid PID` (the killed run's W&B service, which
    notices its parent's death within seconds) is alive: a resume comes later in practice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orphans = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--pid" in args and args[args.index(b"--pid") + 1 :][:1] == [str(pid).encode()]:
                orphans.append(cmdline)
        if not orphans:
            return
        time.sleep(0.2)


# (loss overrides, a changed loss key, the refusal's line). BYOL covers more than NT-Xent (a
# predictor, an EMA target whose cosine rate depends on the restored step) at about the same cost,
# so the default run resumes BYOL; NT-Xent's case is slow (another 75 s).
CASES = [
    pytest.param(
        ["loss=byol"],
        "loss.momentum=0.99",
        "loss.momentum: 0.996 in the checkpoint, 0.99 now",
        id="byol",
    ),
    pytest.param(
        [],
        "loss.temperature=0.2",
        "loss.temperature: 0.5 in the checkpoint, 0.2 now",
        id="ntxent",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("loss", "changed", "refusal"), CASES)
def test_kill_and_resume_matches_uninterrupted_run(tmp_path, loss, changed, refusal):
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    subprocess.run(command(uninterrupted, *loss), env=env(), check=True, capture_output=True)

    kill_after_second_epoch(resumed, lambda run_dir: command(run_dir, *loss))
    epoch_at_kill = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert epoch_at_kill < 3
    result = subprocess.run(command(resumed, *loss), env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout + result.stderr
    assert "Tip:" not in result.stdout + result.stderr  # Lightning's advertisements

    step_a, weights_a = weights(uninterrupted)
    step_b, weights_b = weights(resumed)
    assert step_a == step_b > 0
    assert weights_a.keys() == weights_b.keys()
    if loss:  # BYOL's predictor and target network are in the checkpoint, and were restored
        assert any(k.startswith("objective.predictor.") for k in weights_a)
        assert any(k.startswith("objective.momentum_encoder.") for k in weights_a)
    worst = max(float((weights_b[k] - weights_a[k]).abs().max()) for k in weights_a)
    print(f"resumed vs uninterrupted, max abs difference over the state dict: {worst:.1e}")
    for name in weights_a:
        torch.testing.assert_close(weights_b[name], weights_a[name], rtol=0, atol=1e-6, msg=name)

    # The same run directory with another experiment's config is refused, naming what differs.
    before = (resumed / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    refused = subprocess.run(
        command(resumed, *loss, changed), env=env(), capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert refusal in refused.stderr
    assert (resumed / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before


@pytest.mark.slow  # two more runs with W&B's start-up: about a minute
def test_killed_and_resumed_run_has_one_wandb_run_id(tmp_path):
    """The killed process and the resumed one log under the run directory's W&B run id."""
    other, resumed = tmp_path / "other", tmp_path / "resumed"
    kill_after_second_epoch(resumed, wandb_command)
    result = subprocess.run(wandb_command(resumed), env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout + result.stderr
    run_id = (resumed / "wandb_run_id").read_text().strip()
    offline_runs = sorted(resumed.glob("wandb/offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline_runs)
    subprocess.run(wandb_command(other), env=env(), check=True, capture_output=True)
    assert (other / "wandb_run_id").read_text().strip() != run_id  # another run, another id

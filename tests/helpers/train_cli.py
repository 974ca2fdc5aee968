"""Runs of the real command line (`python -m orbitcl.train ...`) for the tests, the overrides of
a smoke run, and a reader of the CSV files runs write."""

import csv
import os
import subprocess
import sys
from pathlib import Path

# 3 MNIST steps, kNN on 2 batches of bank and queries, diagnostics off, no W&B
# (conf/debug/smoke.yaml, which users run too).
SMOKE = ["dataset=mnist", "+debug=smoke"]


def _environment(env_extra: dict | None) -> dict:
    """This process's environment with W&B offline; `env_extra` values of None unset a variable."""
    env = {**os.environ, "WANDB_MODE": "offline", **(env_extra or {})}
    return {k: v for k, v in env.items() if v is not None}


def run_module(
    *args: str,
    module: str = "orbitcl.train",
    cwd: Path | None = None,
    env_extra: dict | None = None,
) -> subprocess.CompletedProcess:
    """`python -m module args...` with W&B offline; `env_extra` values of None unset a variable."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=_environment(env_extra),
        capture_output=True,
        text=True,
        timeout=900,
    )


def start_module(*args: str, cwd: Path, module: str = "orbitcl.train") -> subprocess.Popen:
    """`python -m module args...` started in the background, in a process group of its own (its
    id the process's) so that a test can kill it with every process it started; output to
    `cwd/<module>.out`."""
    with open(cwd / f"{module}.out", "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            env=_environment(None),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def read_csv(path: Path) -> list[dict]:
    """The rows of a CSV file (a sweep report, a CSV logger's metrics), as text."""
    with open(path) as f:
        return list(csv.DictReader(f))

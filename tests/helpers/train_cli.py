"""Runs of the real command line (`python -m orbitcl.train ...`) for the tests, and the
overrides of a smoke run."""

import os
import subprocess
import sys
from pathlib import Path

# 3 MNIST steps, kNN on 2 batches of bank and queries, diagnostics off, no W&B
# (conf/debug/smoke.yaml, which users run too).
SMOKE = ["dataset=mnist", "+debug=smoke"]


def run_module(
    *args: str,
    module: str = "orbitcl.train",
    cwd: Path | None = None,
    env_extra: dict | None = None,
) -> subprocess.CompletedProcess:
    """`python -m module args...` with W&B offline; `env_extra` values of None unset a variable."""
    env = {**os.environ, "WANDB_MODE": "offline", **(env_extra or {})}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )

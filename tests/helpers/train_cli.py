"""Runs of the real command line (`python -m orbitcl.train ...`) for the tests, the overrides of
a smoke run, and a reader of the CSV files runs write."""

import csv
import json
import os
import re
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


# `python -m orbitcl.train ARGS` for each ARGS (a JSON list of lists in argv[1]) in turn, in one
# process, run as `-m` runs a module (runpy); each run's output after a line "@@run N" on stdout
# and stderr, its exit status on a line "@@exit N STATUS".
_SEVERAL = """
import json, runpy, sys
for number, args in enumerate(json.loads(sys.argv[1])):
    print(f"@@run {number}", flush=True)
    print(f"@@run {number}", file=sys.stderr, flush=True)
    sys.argv = ["orbitcl.train", *args]
    try:
        runpy.run_module("orbitcl.train", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    print(f"@@exit {number} {status}", flush=True)
"""


def run_train_several(
    *runs: list[str], cwd: Path, env_extra: dict | None = None
) -> list[tuple[int, str, str]]:
    """`python -m orbitcl.train ARGS` for each ARGS of `runs`, one after the other in one process:
    the command line's entry point and its argument parsing, with torch's, Lightning's and timm's
    imports (~10 s) paid once. [(exit status, stdout, stderr)] of each run."""
    result = subprocess.run(
        [sys.executable, "-c", _SEVERAL, json.dumps([list(args) for args in runs])],
        cwd=cwd,
        env=_environment(env_extra),
        capture_output=True,
        text=True,
        timeout=900,
    )
    outs, errs = (
        re.split(r"^@@run \d+\n", text, flags=re.M)[1:] for text in (result.stdout, result.stderr)
    )
    assert result.returncode == 0 and len(outs) == len(errs) == len(runs), result.stderr[-3000:]
    statuses = [
        int(line.split()[2]) for line in result.stdout.splitlines() if line.startswith("@@exit")
    ]
    return list(zip(statuses, outs, errs, strict=True))


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

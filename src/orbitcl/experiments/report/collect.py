"""Collecting a sweep: one record per job directory, read from the files the jobs left.

Every job of a sweep (`python -m orbitcl.train -m ...`) leaves `result.json` in its directory
(`orbitcl.training.job.run_job`); a job directory without one belongs to a job that was
killed or is still running ("missing"). The sweep's `multirun.yaml` says which keys it varies
and, for a search (`hparams_search=optuna`), in which direction it optimised.
"""

import fnmatch
import json
import math
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from orbitcl.training.swept_keys import MULTIRUN_FILE, RESULT_FILE, job_values, swept_keys


def load_jobs(sweep_dir: Path) -> tuple[list[str], list[dict]]:
    """The swept keys and one record per job directory (one with `.hydra/overrides.yaml` or a
    result file), in job order: `result.json` as written, plus `job`, its path in the sweep."""
    dirs = {p.parent for p in sweep_dir.rglob(RESULT_FILE)}
    dirs |= {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    keys = swept_keys(sweep_dir)
    jobs = []
    for job_dir in dirs:
        result = job_dir / RESULT_FILE
        if result.is_file():
            record = json.loads(result.read_text())
        else:
            overrides = OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra/overrides.yaml"))
            record = {
                "status": "missing",
                "swept": job_values(overrides, keys),
                "error": f"no {RESULT_FILE}: the job was killed, or is still running",
            }
        record["job"] = job_dir.relative_to(sweep_dir).as_posix()
        jobs.append(record)
    jobs.sort(key=lambda r: (r.get("job_num", _leading_number(r["job"])), r["job"]))
    for record in jobs:  # e.g. no multirun.yaml: the keys the jobs recorded
        keys += [k for k in record.get("swept", {}) if k not in keys]
    return keys, jobs


def search_direction(sweep_dir: Path) -> str | None:
    """`maximize` or `minimize` for a sweep by a sweeper that optimises what the jobs return
    (Optuna's `hydra.sweeper.direction`), None for a grid or a multi-objective search."""
    path = sweep_dir / MULTIRUN_FILE
    if not path.is_file():
        return None
    direction = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.direction")
    return direction if direction in ("maximize", "minimize") else None


def load_study(sweep_dir: Path) -> dict | None:
    """The `study:` the sweep declared (its preset's; see `claims`), as plain data; None if it
    declared none or has no multirun.yaml."""
    path = sweep_dir / MULTIRUN_FILE
    if not path.is_file():
        return None
    node = OmegaConf.select(OmegaConf.load(path), "study")
    return None if node is None else OmegaConf.to_container(node, resolve=True)


def logged_metrics(jobs: list[dict]) -> list[str]:
    """Every metric any job logged a final value of, sorted."""
    return sorted({name for record in jobs for name in record.get("metrics", {})})


ALL_METRICS = "all"


def select_metrics(chosen: Sequence[str], logged: Sequence[str]) -> list[str]:
    """The report's columns from names and patterns: a name as given (logged or not: its column
    then says so), a shell-style pattern (`orbit/*`, `*/encoder/*`) every logged metric it
    matches, `all` every logged metric; each once, in the order given."""
    out: list[str] = []
    for item in chosen:
        if item == ALL_METRICS:
            out += logged
        elif any(c in item for c in "*?["):
            out += [name for name in logged if fnmatch.fnmatchcase(name, item)]
        else:
            out.append(item)
    return list(dict.fromkeys(out))


def _leading_number(name: str) -> float:
    head = name.split("_", 1)[0]
    return int(head) if head.isdigit() else math.inf


def job_rows(keys: list[str], jobs: list[dict], metrics: Sequence[str]) -> list[dict]:
    """The flat table of jobs: job, swept values, status, metrics (None: not logged), wall time,
    error."""
    rows = []
    for record in jobs:
        swept, logged = record.get("swept", {}), record.get("metrics", {})
        rows.append(
            {"job": record["job"]}
            | {key: swept.get(key) for key in keys}
            | {"status": record["status"]}
            | {metric: logged.get(metric) for metric in metrics}
            | {"wall_time_s": record.get("wall_time_s"), "error": record.get("error")}
        )
    return rows

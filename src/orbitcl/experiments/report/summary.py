"""Summarising a sweep, pure: means and confidence intervals over replicate seeds.

No files, no plots: `collect` reads, `render` writes.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from orbitcl.callbacks.names import KNN_ACC, REPORTED

METRICS = REPORTED  # the default columns (orbitcl.callbacks.names)
OBJECTIVE = KNN_ACC  # what each job returns to the sweeper (run_job): what a search optimises
X_KEY = "loss.temperature"  # the plots' horizontal axis
REPLICATE_KEY = "seed"  # the key averaged over: runs that differ only in it are replicates
LEVEL = 0.95


@dataclass
class Report:
    keys: list[str]  # the swept keys, in sweep order
    metrics: list[str]
    jobs: list[dict]  # one per job: job, *keys, status, *metrics, wall_time_s, error
    summary: list[dict]  # one per setting of keys other than the replicate key (see summarize)
    plots: list[Path]
    direction: str | None = None  # a search's (maximize, minimize); None for a grid
    best: dict | None = None  # a search's best job (best_job), None if none finished
    unlogged: list[str] = field(default_factory=list)  # columns no job logged a value of
    evidence: Any = None  # study.Evidence: comparisons, claims, plane, figures

    @property
    def images(self) -> list[Path]:
        """Every picture of the report: the metrics' plots, the plane, the figures."""
        return self.plots + (self.evidence.images if self.evidence else [])

    @property
    def failed(self) -> list[dict]:
        return [job for job in self.jobs if job["status"] != "ok"]


def mean_ci(values: Sequence[float | None], level: float = LEVEL) -> tuple[float, float, int]:
    """Mean, half-width of the two-sided `level` confidence interval of the mean, and count of
    the finite `values`: mean ± t_{(1+level)/2, n-1} s / sqrt(n), with s the sample standard
    deviation (n - 1 in the denominator) and Student's t quantile (Student 1908). Half-width
    NaN for n = 1 (one run gives no spread), and all NaN for n = 0."""
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(x) / n
    if n == 1:
        return mean, math.nan, 1
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in x) / (n - 1))
    return mean, float(stats.t.ppf((1 + level) / 2, n - 1)) * s / math.sqrt(n), n


def summarize(
    keys: list[str], rows: list[dict], metrics: Sequence[str], replicate: str = REPLICATE_KEY
) -> list[dict]:
    """One row per setting of the swept keys other than `replicate`, in sweep order: those
    values, `jobs` and `ok` (counts), and per metric its mean, `<metric> ci95` (half-width) and
    `<metric> n` over the jobs that finished (failed jobs are left out)."""
    setting_keys = [key for key in keys if key != replicate]
    groups: dict[str, list[dict]] = {}
    for row in rows:  # JSON text as the group's key: values may be lists
        groups.setdefault(json.dumps([row[key] for key in setting_keys]), []).append(row)
    summary = []
    for members in groups.values():
        ok = [row for row in members if row["status"] == "ok"]
        out = {key: members[0][key] for key in setting_keys} | {"jobs": len(members), "ok": len(ok)}
        for metric in metrics:
            mean, half, n = mean_ci([row[metric] for row in ok])
            out |= {metric: mean, f"{metric} ci95": half, f"{metric} n": n}
        summary.append(out)
    return summary


def best_job(rows: list[dict], direction: str, metric: str = OBJECTIVE) -> dict | None:
    """The finished job with the highest (`maximize`) or lowest (`minimize`) `metric`, the first
    in job order on a tie, as Optuna picks its best trial; None if no job finished with one."""
    scored = [
        row
        for row in rows
        if row["status"] == "ok" and row.get(metric) is not None and math.isfinite(row[metric])
    ]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda row: row[metric])

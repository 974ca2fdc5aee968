"""The report of a sweep, rebuilt from its directory alone (`python -m orbitcl.report DIR`).

From the jobs' files alone (`collect`) it summarises (`summary`, pure) and writes (`render`),
into the sweep directory:

- `sweep_report.csv`: one row per job: its directory, the swept values, its status (`ok`,
  `failed`, `missing`), the final value of each metric, wall time, error;
- `sweep_report.md`: the same table, then the mean ± 95% confidence interval over seeds for
  each setting of the other swept keys (e.g. each loss and temperature), and the plots; for a
  search (Optuna), the best trial instead of the means, each trial its own setting;
- `sweep_report_<metric>.png`: each metric against the temperature, one line per setting of
  the other swept keys (e.g. one per loss), error bars the 95% CI over seeds.

The Hydra callback `orbitcl.experiments.sweep.SweepReport` calls `build_report` when a sweep ends.
"""

from orbitcl.experiments.report.collect import RESULT_FILE, job_rows, load_jobs, search_direction
from orbitcl.experiments.report.render import build_report, markdown, plot_metric
from orbitcl.experiments.report.summary import (
    LEVEL,
    METRICS,
    OBJECTIVE,
    REPLICATE_KEY,
    X_KEY,
    Report,
    best_job,
    mean_ci,
    summarize,
)

__all__ = [
    "LEVEL",
    "METRICS",
    "OBJECTIVE",
    "REPLICATE_KEY",
    "RESULT_FILE",
    "X_KEY",
    "Report",
    "best_job",
    "build_report",
    "job_rows",
    "load_jobs",
    "markdown",
    "mean_ci",
    "plot_metric",
    "search_direction",
    "summarize",
]

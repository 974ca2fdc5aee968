"""The report of a sweep, rebuilt from its directory alone (`python -m orbitcl.report DIR`).

From the jobs' files alone (`collect`) it summarises (`summary`, pure) and writes (`render`),
into the sweep directory:

- `sweep_report.csv`: one row per job: its directory, the swept values, its status (`ok`,
  `failed`, `missing`), the final value of each metric, wall time, error;
- `sweep_report.md`: the same table, then the mean ± 95% confidence interval over seeds for
  each setting of the other swept keys (e.g. each loss and temperature), and the plots; for a
  search (Optuna), the best trial instead of the means, each trial its own setting;
- `sweep_report_<metric>.png`: each metric against the temperature, one line per setting of
  the other swept keys (e.g. one per loss), error bars the 95% CI over seeds;
- `sweep_report_plane.png`: the alignment-uniformity plane, each setting a curve through its
  temperatures, and where the settings lie against NT-Xent's temperature curve (`plane`);
- with a comparison (`--compare loss --reference orl`, or the sweep's `study:`): the difference
  of each metric to the reference, paired by seed, Holm-corrected, with a verdict (`compare`),
  and the study's claims, supported or not (`claims`), at the end of the Markdown;
- `figures/`: the write-up's figures from one checkpoint per setting, when the study asks for
  them or `--figures` (`figures`, drawn by `orbitcl.analyze`).

The columns are `callbacks.names.REPORTED` unless chosen: any logged metric, by name or pattern
(`collect.select_metrics`).

The Hydra callback `orbitcl.experiments.sweep.SweepReport` calls `build_report` when a sweep ends.
"""

from orbitcl.experiments.report.claims import StudyError, parse_study
from orbitcl.experiments.report.collect import (
    ALL_METRICS,
    RESULT_FILE,
    job_rows,
    load_jobs,
    logged_metrics,
    search_direction,
    select_metrics,
)
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
    "ALL_METRICS",
    "LEVEL",
    "METRICS",
    "OBJECTIVE",
    "REPLICATE_KEY",
    "RESULT_FILE",
    "StudyError",
    "X_KEY",
    "Report",
    "best_job",
    "build_report",
    "job_rows",
    "load_jobs",
    "logged_metrics",
    "markdown",
    "mean_ci",
    "parse_study",
    "plot_metric",
    "search_direction",
    "select_metrics",
    "summarize",
]

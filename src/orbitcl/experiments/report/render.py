"""Rendering a sweep's report: the CSV of jobs, the plots and the Markdown, into its directory."""

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from orbitcl.checks.numbers import is_number
from orbitcl.experiments.report import cka
from orbitcl.experiments.report import study as study_part
from orbitcl.experiments.report.claims import check_comparison, parse_study
from orbitcl.experiments.report.collect import (
    job_rows,
    load_jobs,
    load_study,
    logged_metrics,
    search_direction,
    select_metrics,
)
from orbitcl.experiments.report.summary import (
    LEVEL,
    METRICS,
    OBJECTIVE,
    REPLICATE_KEY,
    X_KEY,
    Report,
    best_job,
    summarize,
)
from orbitcl.tracking import plots
from orbitcl.training.swept_keys import swept_choices

log = logging.getLogger(__name__)


def plot_metric(
    summary: list[dict],
    keys: list[str],
    metric: str,
    x: str,
    replicate: str = REPLICATE_KEY,
    search: bool = False,
) -> Figure | None:
    """`metric` against `x`, one line per setting of the other swept keys, error bars the CI;
    for a `search` (every trial its own setting), one unjoined point per trial. None when there
    is nothing to draw (`x` not numeric, or no value of the metric)."""
    line_keys = [] if search else [key for key in keys if key not in (x, replicate)]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in summary:
        if not is_number(row.get(x)) or not math.isfinite(row[metric]):
            continue
        label = ", ".join(f"{key}={row[key]}" for key in line_keys) or metric
        lines.setdefault(label, []).append((row[x], row[metric], row[f"{metric} ci95"]))
    if not lines:
        return None
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    linestyle = "none" if search else "-"  # a search's trials share no line
    for label, points in lines.items():
        xs, means, halves = zip(*sorted(points), strict=True)
        errors = [h if math.isfinite(h) else 0.0 for h in halves]  # one seed: no bar
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, linestyle=linestyle, label=label)
    xs = sorted({p[0] for points in lines.values() for p in points})
    if xs[0] > 0:  # temperatures: ratios matter, so a log axis, ticked at a grid's values
        ax.set_xscale("log")
        if search:  # a search's values are many and arbitrary: its range and middle
            xs = sorted({xs[0], math.sqrt(xs[0] * xs[-1]), xs[-1]})
        ax.set_xticks(xs, [f"{v:.3g}" if search else f"{v:g}" for v in xs])
        ax.minorticks_off()
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    spread = f"mean $\\pm$ {LEVEL:.0%} CI over {replicate}" if replicate in keys else "one run each"
    spread = "one point per trial" if search else spread
    ax.set_title(f"{metric}: {spread}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def build_report(
    sweep_dir: Path,
    metrics: Sequence[str] = METRICS,
    x: str = X_KEY,
    replicate: str = REPLICATE_KEY,
    compare: str | None = None,
    reference: Any = None,
    figures: bool | None = None,
    allow: Sequence[str] = (),
) -> Report:
    """Reads the sweep's jobs and writes the CSV, the plots and the Markdown into `sweep_dir`.

    `metrics`: names and patterns (`collect.select_metrics`). `compare`, `reference`: compare
    `compare=reference` with every other value of `compare` (default: the sweep's `study`, see
    `claims`). `figures`: draw the write-up's figures (None: when the study asks for them),
    building only allow-listed targets (and `allow`). Raises StudyError on a bad study or
    comparison, before anything is written."""
    keys, jobs = load_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no jobs in {sweep_dir}: pass the directory of a sweep (-m)")
    swept = swept_choices(sweep_dir) or dict.fromkeys(keys)  # no multirun.yaml: values unknown
    study = parse_study(load_study(sweep_dir), swept)
    if compare is not None:
        check_comparison(compare, reference, swept)
    direction = search_direction(sweep_dir)
    logged = logged_metrics(jobs)
    metrics = select_metrics(metrics, logged)
    if direction and OBJECTIVE not in metrics:  # the column the best trial is chosen by
        metrics.append(OBJECTIVE)
    rows = job_rows(keys, jobs, metrics)
    summary = summarize(keys, rows, metrics, replicate)
    unlogged = [metric for metric in metrics if metric not in logged]
    report = Report(keys, metrics, rows, summary, [], direction, unlogged=unlogged)
    if direction:
        report.best = best_job(rows, direction)
    _write_csv(rows, sweep_dir / "sweep_report.csv")
    if x in keys:
        for metric in metrics:
            fig = plot_metric(summary, keys, metric, x, replicate, search=direction is not None)
            if fig is not None:
                name = "sweep_report_" + metric.replace("/", "_") + ".png"
                report.plots.append(plots.save(fig, sweep_dir / name))
    report.evidence = study_part.gather(
        sweep_dir, keys, jobs, metrics, study, x, replicate, compare, reference, figures, allow
    )
    text = markdown(report, sweep_dir.name, x, replicate)
    try:
        cka_text = cka.cka_report(sweep_dir, jobs, replicate, allow)
    except (FileNotFoundError, ValueError, RuntimeError) as err:  # a checkpoint it cannot load
        log.warning("no CKA tables: %s", err)
        cka_text = None
    (sweep_dir / "sweep_report.md").write_text(text + ("\n" + cka_text if cka_text else ""))
    return report


def _write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:  # full precision (repr of floats); empty cell: not logged
            writer.writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _cell(value: Any, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt) if is_number(value) and not isinstance(value, int) else str(value)


def _table(header: list[str], lines: list[list[str]], numeric_from: int) -> list[str]:
    """Markdown table lines; columns from `numeric_from` on are right-aligned."""
    rule = ["---"] * numeric_from + ["---:"] * (len(header) - numeric_from)
    return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *lines]]


def markdown(report: Report, title: str, x: str = X_KEY, replicate: str = REPLICATE_KEY) -> str:
    keys, metrics = report.keys, report.metrics
    statuses = [job["status"] for job in report.jobs]
    done = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    out = [f"# Sweep report: {title}", ""]
    out += [f"{len(report.jobs)} jobs ({done}); swept: {', '.join(keys) or 'nothing'}.", ""]
    if report.direction:
        out += _best_trial(report)

    out += ["## Jobs", ""]
    header = ["job", *keys, "status", *metrics, "wall time (s)"]
    lines = [  # the job's number: its directory's name repeats the swept values
        [row["job"].split("_", 1)[0], *(_cell(row[k], "g") for k in keys), row["status"]]
        + [_cell(row[m]) for m in metrics]
        + [_cell(row["wall_time_s"], ".1f")]
        for row in report.jobs
    ]
    out += _table(header, lines, len(keys) + 2) + [""]
    if report.unlogged:
        out += [f"Not logged by any job: {', '.join(report.unlogged)}.", ""]
    for job in report.failed:
        error = " ".join(str(job["error"]).split())  # one line, whatever the message held
        out.append(f"- `{job['job']}` {job['status']}: {error}")
    out += [""] if report.failed else []

    if not report.direction:  # a search's trials are each their own setting: nothing to average
        out += _summary_section(report, replicate)
    if report.plots:
        out += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in report.plots] + [""]
    elif x not in keys:
        out += [f"No plots: `{x}` was not swept.", ""]
    if report.evidence is not None:
        out += study_part.markdown(report.evidence, replicate, x)
    return "\n".join(out)


def _best_trial(report: Report) -> list[str]:
    """The section of a search (Optuna): which job is the best trial, and its values."""
    out = ["## Best trial", ""]
    if report.best is None:
        return out + ["No trial finished: there is no best trial.", ""]
    best = report.best
    values = ", ".join(f"{key}={_cell(best[key], 'g')}" for key in report.keys)
    extreme = "highest" if report.direction == "maximize" else "lowest"
    return out + [
        f"Job {best['job'].split('_', 1)[0]} (`{best['job']}`): {OBJECTIVE} = "
        f"{_cell(best[OBJECTIVE])}, the {extreme} of the trials that finished; {values}.",
        "",
    ]


def _summary_section(report: Report, replicate: str) -> list[str]:
    """The mean ± CI over `replicate` of each setting of the other swept keys."""
    keys, metrics = report.keys, report.metrics
    setting_keys = [k for k in keys if k != replicate]
    out = [f"## Mean ± {LEVEL:.0%} CI over {replicate}", ""]
    if replicate not in keys:
        out += [f"`{replicate}` was not swept: one job per setting, no intervals.", ""]
    header = [*setting_keys, "ok / jobs", *metrics]
    lines = []
    for row in report.summary:
        cells = [_cell(row[k], "g") for k in setting_keys] + [f"{row['ok']} / {row['jobs']}"]
        for m in metrics:
            mean, half, n = row[m], row[f"{m} ci95"], row[f"{m} n"]
            cell = _cell(mean) + ("" if math.isnan(half) else f" ± {half:.4f}")
            cells.append(cell + (f" (n={n})" if 0 < n < row["ok"] else ""))
        lines.append(cells)
    out += _table(header, lines, len(setting_keys)) + [""]
    out += [
        f"Mean over the jobs that finished ± the half-width of the two-sided {LEVEL:.0%} "
        f"confidence interval of the mean: t(0.975, n-1) s / sqrt(n), s the sample standard "
        f"deviation over n {replicate}s (no interval for n = 1). Final values: `val/knn_acc` "
        "and the orbit/geometry metrics at the last validation, `tension/mean` and `train/loss` "
        "at their last logging step.",
        "",
    ]
    return out

"""The report of a sweep, rebuilt from its directory alone: `python -m orbitcl.report SWEEP_DIR`.

Every job of a sweep (`python -m orbitcl.train -m ...`) leaves `result.json` in its directory
(see orbitcl.sweep); a job directory without one belongs to a job that was killed or is still
running ("missing"). From these files alone this writes, into SWEEP_DIR:

- `sweep_report.csv`: one row per job: its directory, the swept values, its status (`ok`,
  `failed`, `missing`), the final value of each metric in METRICS, wall time, error;
- `sweep_report.md`: the same table, then the mean ± 95% confidence interval over seeds for
  each setting of the other swept keys (e.g. each loss and temperature), and the plots;
- `sweep_report_<metric>.png`: each metric against the temperature, one line per setting of
  the other swept keys (e.g. one per loss), error bars the 95% CI over seeds.

The Hydra callback `orbitcl.sweep.SweepReport` calls `write_report` when a sweep ends.
"""

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import OmegaConf
from scipy import stats

from orbitcl import plots
from orbitcl.swept import job_values, swept_keys

RESULT_FILE = "result.json"
METRICS = (
    "val/knn_acc",
    "orbit/anchor_view_cos",
    "orbit/variance",
    "geometry/alignment",
    "geometry/uniformity",
    "tension/mean",
    "train/loss",
)
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


def plot_metric(
    summary: list[dict], keys: list[str], metric: str, x: str, replicate: str = REPLICATE_KEY
) -> Figure | None:
    """`metric` against `x`, one line per setting of the other swept keys, error bars the CI;
    None when there is nothing to draw (`x` not numeric, or no value of the metric)."""
    line_keys = [key for key in keys if key not in (x, replicate)]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in summary:
        if not _is_number(row.get(x)) or not math.isfinite(row[metric]):
            continue
        label = ", ".join(f"{key}={row[key]}" for key in line_keys) or metric
        lines.setdefault(label, []).append((row[x], row[metric], row[f"{metric} ci95"]))
    if not lines:
        return None
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    for label, points in lines.items():
        xs, means, halves = zip(*sorted(points), strict=True)
        errors = [h if math.isfinite(h) else 0.0 for h in halves]  # one seed: no bar
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=label)
    xs = sorted({p[0] for points in lines.values() for p in points})
    if xs[0] > 0:  # temperatures: ratios matter, so a log axis, ticked at the swept values
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        ax.minorticks_off()
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    spread = f"mean $\\pm$ {LEVEL:.0%} CI over {replicate}" if replicate in keys else "one run each"
    ax.set_title(f"{metric}: {spread}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def build_report(
    sweep_dir: Path,
    metrics: Sequence[str] = METRICS,
    x: str = X_KEY,
    replicate: str = REPLICATE_KEY,
) -> Report:
    """Reads the sweep's jobs and writes the CSV, the plots and the Markdown into `sweep_dir`."""
    keys, jobs = load_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no jobs in {sweep_dir}: pass the directory of a sweep (-m)")
    rows = job_rows(keys, jobs, metrics)
    summary = summarize(keys, rows, metrics, replicate)
    report = Report(keys, list(metrics), rows, summary, [])
    _write_csv(rows, sweep_dir / "sweep_report.csv")
    if x in keys:
        for metric in metrics:
            fig = plot_metric(summary, keys, metric, x, replicate)
            if fig is not None:
                name = "sweep_report_" + metric.replace("/", "_") + ".png"
                report.plots.append(plots.save(fig, sweep_dir / name))
    (sweep_dir / "sweep_report.md").write_text(markdown(report, sweep_dir.name, x, replicate))
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
    return format(value, fmt) if _is_number(value) and not isinstance(value, int) else str(value)


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

    out += ["## Jobs", ""]
    header = ["job", *keys, "status", *metrics, "wall time (s)"]
    lines = [  # the job's number: its directory's name repeats the swept values
        [row["job"].split("_", 1)[0], *(_cell(row[k], "g") for k in keys), row["status"]]
        + [_cell(row[m]) for m in metrics]
        + [_cell(row["wall_time_s"], ".1f")]
        for row in report.jobs
    ]
    out += _table(header, lines, len(keys) + 2) + [""]
    for job in report.failed:
        error = " ".join(str(job["error"]).split())  # one line, whatever the message held
        out.append(f"- `{job['job']}` {job['status']}: {error}")
    out += [""] if report.failed else []

    setting_keys = [k for k in keys if k != replicate]
    out += [f"## Mean ± {LEVEL:.0%} CI over {replicate}", ""]
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
    if report.plots:
        out += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in report.plots] + [""]
    elif x not in keys:
        out += [f"No plots: `{x}` was not swept.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orbitcl.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory (hydra.sweep.dir)")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--x", default=X_KEY, help="the swept key the plots run along")
    parser.add_argument("--replicate", default=REPLICATE_KEY, help="the swept key averaged over")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep_dir, args.metrics, args.x, args.replicate)
    except FileNotFoundError as err:
        print(f"orbitcl.report: error: {err}", file=sys.stderr)
        return 2
    print((args.sweep_dir / "sweep_report.md").read_text())
    print(f"report in {args.sweep_dir}: sweep_report.csv, .md and {len(report.plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())

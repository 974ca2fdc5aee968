"""orbitcl.report, on sweep directories written by hand: the per-job table, the mean and 95% CI
over seeds (checked against t quantiles from a printed table), the plots and the command line."""

import csv
import json
import math

import pytest
import yaml

from orbitcl.experiments import report
from orbitcl.report import main
from orbitcl.training.swept_keys import job_values, label, swept_keys

# Two-sided 95% Student t quantiles t(0.975, dof), as printed in any statistics table.
T975 = {1: 12.706204736174707, 2: 4.302652729749464}

KNN = {  # (loss, temperature) -> val/knn_acc of seeds 0, 1, 2 (None: that job failed)
    ("ntxent", 0.1): [0.90, 0.92, 0.97],
    ("ntxent", 0.5): [0.80, 0.86, None],
    ("orl", 0.1): [0.91, 0.93, 0.95],
    ("orl", 0.5): [0.70, None, None],
}


def write_multirun(sweep_dir, task, params=None, direction=None):
    sweep_dir.mkdir(parents=True, exist_ok=True)
    config = {"hydra": {"sweeper": {"params": params}, "overrides": {"task": task}}, "seed": 0}
    if direction is not None:  # Optuna's sweeper
        config["hydra"]["sweeper"]["direction"] = direction
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(config))


def write_job(sweep_dir, num, overrides, result=None):
    job_dir = sweep_dir / f"{num}_{','.join(overrides)}"
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if result is not None:
        (job_dir / "result.json").write_text(json.dumps({"job_num": num, **result}))
    return job_dir


@pytest.fixture
def sweep(tmp_path):
    """12 jobs of `loss=ntxent,orl loss.temperature=0.1,0.5 seed=0,1,2`: 2 failed, and one with
    no result file (killed)."""
    sweep_dir = tmp_path / "2026-01-01_00-00-00"
    write_multirun(
        sweep_dir, ["loss=ntxent,orl", "loss.temperature=0.1,0.5", "seed=0,1,2", "dataset=mnist"]
    )
    num = 0
    for (loss, temperature), accuracies in KNN.items():
        for seed, accuracy in enumerate(accuracies):
            overrides = [f"loss={loss}", f"loss.temperature={temperature}", f"seed={seed}"]
            swept = {"loss": loss, "loss.temperature": temperature, "seed": seed}
            if (loss, temperature, seed) == ("orl", 0.5, 2):  # killed: no result.json
                write_job(sweep_dir, num, [*overrides, "dataset=mnist"])
            elif accuracy is None:
                error = "ConfigError: something\nwent wrong"
                result = {"status": "failed", "error": error, "swept": swept, "metrics": {}}
                write_job(sweep_dir, num, [*overrides, "dataset=mnist"], result)
            else:
                metrics = {"val/knn_acc": accuracy, "orbit/variance": 1 - accuracy, "epoch": 3.0}
                result = {"status": "ok", "error": None, "swept": swept, "metrics": metrics}
                write_job(
                    sweep_dir, num, [*overrides, "dataset=mnist"], result | {"wall_time_s": 2}
                )
            num += 1
    return sweep_dir


def test_mean_ci_is_the_t_interval():
    # [1, 2, 3, 4]: mean 2.5, sample variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3.
    mean, half, n = report.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert (mean, n) == (2.5, 4)
    assert half == pytest.approx(3.182446305284263 * math.sqrt(5 / 3) / 2, rel=1e-12)
    # Two values 1, 3: s = sqrt(2), t(0.975, 1) = 12.706...; None and NaN are left out.
    mean, half, n = report.mean_ci([1.0, None, 3.0, math.nan])
    assert (mean, n) == (2.0, 2)
    assert half == pytest.approx(T975[1] * math.sqrt(2) / math.sqrt(2), rel=1e-12)
    mean, half, n = report.mean_ci([0.7])
    assert (mean, n) == (0.7, 1) and math.isnan(half)  # one seed: no interval
    assert all(math.isnan(v) for v in report.mean_ci([None])[:2])


def test_swept_keys_come_from_the_command_line_and_the_sweeper_params(tmp_path):
    write_multirun(
        tmp_path,
        ["loss.temperature=0.2,0.5", "dataset=mnist", "seed=range(2)", "+trainer.x=1"],
        params={"loss": "ntxent,orl", "seed": "0,1,2"},  # a preset's sweep
    )
    keys = swept_keys(tmp_path)
    assert keys == ["loss", "seed", "loss.temperature"]
    values = job_values(["seed=1", "loss.temperature=0.5", "loss=orl", "dataset=mnist"], keys)
    assert values == {"loss": "orl", "seed": 1, "loss.temperature": 0.5}
    assert label(values) == "loss=orl,seed=1,loss.temperature=0.5"
    assert swept_keys(tmp_path / "not-a-sweep") == []


def test_csv_has_one_row_per_job_with_status_and_metrics(sweep):
    result = report.build_report(sweep)
    with open(sweep / "sweep_report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 == len(result.jobs)
    assert list(rows[0])[:5] == ["job", "loss", "loss.temperature", "seed", "status"]
    assert list(rows[0])[5:] == [*report.METRICS, "wall_time_s", "error"]
    assert [int(r["job"].split("_")[0]) for r in rows] == list(range(12))  # job order
    for row in rows:
        accuracy = KNN[(row["loss"], float(row["loss.temperature"]))][int(row["seed"])]
        if accuracy is not None:
            assert row["status"] == "ok"
            assert float(row["val/knn_acc"]) == accuracy  # full precision
            assert float(row["orbit/variance"]) == 1 - accuracy
            assert row["tension/mean"] == ""  # never logged: empty, not 0
    statuses = {(r["loss"], r["loss.temperature"], r["seed"]): r["status"] for r in rows}
    assert statuses[("ntxent", "0.5", "2")] == "failed"
    assert statuses[("orl", "0.5", "2")] == "missing"
    assert [r["status"] for r in rows].count("ok") == 9
    assert rows[5]["error"] == "ConfigError: something\nwent wrong"
    assert len(result.failed) == 3  # failed or missing


def test_summary_is_mean_and_ci_over_seeds_of_finished_jobs(sweep):
    result = report.build_report(sweep)
    summary = {(row["loss"], row["loss.temperature"]): row for row in result.summary}
    assert list(summary) == list(KNN)  # sweep order, seeds merged
    # ntxent, 0.1: 0.90, 0.92, 0.97 -> mean 0.93, deviations -0.03, -0.01, 0.04,
    # s^2 = (0.0009 + 0.0001 + 0.0016) / 2 = 0.0013.
    row = summary[("ntxent", 0.1)]
    assert (row["jobs"], row["ok"], row["val/knn_acc n"]) == (3, 3, 3)
    assert row["val/knn_acc"] == pytest.approx(0.93, rel=1e-12)
    half = T975[2] * math.sqrt(0.0013) / math.sqrt(3)
    assert row["val/knn_acc ci95"] == pytest.approx(half, rel=1e-9)
    # ntxent, 0.5: seed 2 failed -> over 0.80, 0.86: mean 0.83, s^2 = 2 * 0.03^2 = 0.0018.
    row = summary[("ntxent", 0.5)]
    assert (row["jobs"], row["ok"]) == (3, 2)
    assert row["val/knn_acc"] == pytest.approx(0.83, rel=1e-12)
    half = T975[1] * math.sqrt(0.0018) / math.sqrt(2)
    assert row["val/knn_acc ci95"] == pytest.approx(half, rel=1e-9)
    # orl, 0.5: one seed finished -> no interval.
    row = summary[("orl", 0.5)]
    assert row["ok"] == 1 and row["val/knn_acc"] == 0.70 and math.isnan(row["val/knn_acc ci95"])
    assert summary[("orl", 0.1)]["tension/mean n"] == 0

    text = (sweep / "sweep_report.md").read_text()
    assert f"| ntxent | 0.1 | 3 / 3 | 0.9300 ± {T975[2] * math.sqrt(0.0013 / 3):.4f} |" in text
    assert f"| ntxent | 0.5 | 2 / 3 | 0.8300 ± {T975[1] * math.sqrt(0.0009):.4f} |" in text
    assert "| orl | 0.5 | 1 / 3 | 0.7000 |" in text
    assert "12 jobs (9 ok, 2 failed, 1 missing)" in text
    assert "failed: ConfigError: something went wrong" in text  # one line per failure
    assert "missing: no result.json" in text


def test_plots_one_per_metric_with_values(sweep):
    result = report.build_report(sweep)
    names = sorted(p.name for p in result.plots)
    assert names == ["sweep_report_orbit_variance.png", "sweep_report_val_knn_acc.png"]
    assert all((sweep / name).stat().st_size > 5000 for name in names)
    fig = report.plot_metric(result.summary, result.keys, "val/knn_acc", "loss.temperature")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss=ntxent", "loss=orl"]
    assert list(ax.lines[0].get_xdata()) == [0.1, 0.5]  # one point per temperature
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.93, 0.83])
    # Without the temperature swept there is no x axis: no plots, and the report says so.
    no_x = report.build_report(sweep, x="model.width")
    assert (
        no_x.plots == []
        and "`model.width` was not swept" in (sweep / "sweep_report.md").read_text()
    )


def test_command_line_rebuilds_the_report(sweep, capsys):
    assert main([str(sweep)]) == 0
    first = (sweep / "sweep_report.csv").read_text()
    (sweep / "sweep_report.csv").unlink()
    assert main([str(sweep)]) == 0
    assert (sweep / "sweep_report.csv").read_text() == first  # a function of the directory
    assert "# Sweep report: 2026-01-01_00-00-00" in capsys.readouterr().out
    assert main([str(sweep / "0_nothing-here")]) == 2
    assert "no jobs" in capsys.readouterr().err


def write_search(sweep_dir, accuracies, direction="maximize"):
    """An Optuna search over the temperature and the learning rate, one trial per accuracy (None:
    that trial failed)."""
    params = {
        "loss.temperature": "interval(0.05, 1.0)",
        "optim.optimizer.lr": "interval(1e-4, 0.01)",
    }
    write_multirun(sweep_dir, ["hparams_search=optuna"], params, direction)
    for num, accuracy in enumerate(accuracies):
        swept = {"loss.temperature": 0.1 * (num + 1), "optim.optimizer.lr": 0.001}
        overrides = [f"{key}={value}" for key, value in swept.items()]
        ok = accuracy is not None
        metrics = {"val/knn_acc": accuracy, "train/loss": 5.0 - num} if ok else {}
        error = None if ok else "NonFiniteLossError: loss is nan"
        result = {"status": "ok" if ok else "failed", "swept": swept, "metrics": metrics}
        write_job(sweep_dir, num, overrides, result | {"error": error})


def test_a_search_names_its_best_trial(tmp_path):
    write_search(tmp_path, [0.80, 0.91, None, 0.91])
    result = report.build_report(tmp_path)
    assert result.direction == "maximize"
    assert result.best["job"].startswith("1_")  # the first of the two best, as Optuna's
    text = (tmp_path / "sweep_report.md").read_text()
    assert (
        "## Best trial\n\nJob 1 (`1_loss.temperature=0.2,optim.optimizer.lr=0.001`): "
        "val/knn_acc = 0.9100, the highest of the trials that finished; loss.temperature=0.2, "
        "optim.optimizer.lr=0.001." in text
    )
    assert "## Mean" not in text  # every trial is its own setting: nothing to average
    assert "sweep_report_val_knn_acc.png" in [p.name for p in result.plots]
    fig = report.plot_metric(
        result.summary, result.keys, "val/knn_acc", "loss.temperature", search=True
    )
    (series,) = fig.axes[0].containers  # one series, each trial a point, not joined
    points = series.lines[0]
    assert points.get_linestyle() == "None"
    assert list(points.get_ydata()) == [0.80, 0.91, 0.91]  # by temperature; the failed one left out
    assert "failed: NonFiniteLossError: loss is nan" in text
    # Chosen by the objective even when the report's columns leave it out.
    assert report.build_report(tmp_path, metrics=["train/loss"]).best["job"].startswith("1_")
    # A search that minimises picks the lowest.
    assert report.best_job(result.jobs, "minimize")["job"].startswith("0_")


def test_a_search_in_which_no_trial_finished_says_so(tmp_path):
    write_search(tmp_path, [None, None])
    assert report.build_report(tmp_path).best is None
    text = (tmp_path / "sweep_report.md").read_text()
    assert "## Best trial\n\nNo trial finished: there is no best trial." in text


def test_a_grid_is_not_a_search(sweep):
    assert report.search_direction(sweep) is None
    result = report.build_report(sweep)
    assert result.best is None and "## Best trial" not in (sweep / "sweep_report.md").read_text()

"""`hparams_search=optuna`: seeded TPE over ORL's temperature, learning rate and t_min,
maximising the final val/knn_acc; each trial a job of the sweep, the best one named in the
report; failed trials recorded as failed, without ending the study."""

import json

import pytest
import yaml
from helpers.train_cli import read_csv, run_module

SEARCHED = ["loss.temperature", "optim.optimizer.lr", "loss.t_min"]  # conf/hparams_search
BOUNDS = {
    "loss.temperature": (0.05, 1.0),
    "optim.optimizer.lr": (1e-4, 1e-2),
    "loss.t_min": (1e-6, 0.1),
}


def test_optuna_search_names_its_best_trial(tmp_path):
    sweep_dir = tmp_path / "search"
    result = run_module(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.max_steps=3",
        "+debug=smoke",  # digits, diagnostics off
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(sweep_dir / "sweep_report.csv")
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert list(rows[0])[1:4] == SEARCHED  # the report's columns: the searched values
    for row in rows:
        config = json.loads((sweep_dir / row["job"] / "result.json").read_text())["config"]
        assert config["loss"]["_target_"] == "orbitcl.losses.ORLLoss"
        for key, (low, high) in BOUNDS.items():
            assert low <= float(row[key]) <= high, key
    assert len({row["loss.temperature"] for row in rows}) == 3  # three different trials

    # The best trial is the job with the highest final kNN accuracy, as Optuna found it.
    best = max(rows, key=lambda row: float(row["val/knn_acc"]))
    optuna = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert optuna["best_value"] == float(best["val/knn_acc"])
    assert optuna["best_params"] == {key: float(best[key]) for key in SEARCHED}
    text = (sweep_dir / "sweep_report.md").read_text()
    number = best["job"].split("_")[0]
    assert f"## Best trial\n\nJob {number} (`{best['job']}`): val/knn_acc = " in text


def test_failed_trials_are_reported_as_failed_not_as_a_crash(tmp_path):
    sweep_dir = tmp_path / "search"
    result = run_module(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "+debug=smoke",
        "loss.temperature=-1",  # fixed for every trial (out of the search), and invalid
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # as any sweep with failed jobs
    assert "Traceback" not in result.stderr + result.stdout
    assert "2 of 2 jobs did not finish" in result.stderr
    rows = read_csv(sweep_dir / "sweep_report.csv")
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert all("loss.temperature=-1 is invalid" in row["error"] for row in rows)
    text = (sweep_dir / "sweep_report.md").read_text()
    assert "## Best trial\n\nNo trial finished: there is no best trial." in text


@pytest.mark.slow
def test_a_search_run_again_skips_its_finished_trials_and_goes_on(tmp_path):
    """Seeded TPE proposes the same trials when the earlier ones return the same values, so the
    same command finds them finished, and a larger n_trials extends the search."""
    sweep_dir = tmp_path / "search"
    search = ["-m", "hparams_search=optuna", "+debug=smoke", f"hydra.sweep.dir={sweep_dir}"]
    first = run_module(*search, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = read_csv(sweep_dir / "sweep_report.csv")

    again = run_module(*search, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished before with this config: skipped") == 2
    assert "kNN accuracy (" not in again.stdout  # nothing trained
    assert read_csv(sweep_dir / "sweep_report.csv") == rows

    longer = run_module(*search, "hydra.sweeper.n_trials=3", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert longer.stdout.count("finished before with this config: skipped") == 2
    assert longer.stdout.count("kNN accuracy (") == 1  # the third trial
    extended = read_csv(sweep_dir / "sweep_report.csv")
    assert extended[:2] == rows and len(extended) == 3 and extended[2]["status"] == "ok"

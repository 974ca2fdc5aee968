"""A study's report, from a sweep directory written by hand: every metric reachable, the paired
comparisons and the claims' verdicts (numbers worked out by hand), the plane, the command line,
and the study presets checked before a sweep starts."""

import json
import math

import pytest
import yaml

from orbitcl.experiments import report
from orbitcl.experiments.report.figures import pick_jobs
from orbitcl.experiments.sweep import SweepReport
from orbitcl.report import main

SEEDS = 3
# loss -> metric -> value per seed. Against ORL: NT-Xent differs in every claimed metric; the
# mean-tension control in orbit variance only (its anchor-view cosine is noise).
METRICS = {
    "orl": {
        "orbit/anchor_view_cos": [0.90, 0.92, 0.91],
        "orbit/variance": [0.10, 0.12, 0.11],
        "val/knn_acc": [0.90, 0.91, 0.92],
        "geometry/uniformity": [-3.0, -3.1, -2.9],
        "geometry/alignment": [0.30, 0.32, 0.31],
        "classes/within_cos": [0.5, 0.6, 0.7],
    },
    "ntxent": {
        "orbit/anchor_view_cos": [0.80, 0.83, 0.80],  # d = 0.10, 0.09, 0.11
        "orbit/variance": [0.20, 0.23, 0.20],  # d = -0.10, -0.11, -0.09
        "val/knn_acc": [0.95, 0.97, 0.96],  # d = -0.05, -0.06, -0.04
        "geometry/uniformity": [-3.0, -3.2, -3.1],
        "geometry/alignment": [0.40, 0.41, 0.42],
    },
    "orl_mean_tension": {
        "orbit/anchor_view_cos": [0.85, 0.93, 0.88],  # d = 0.05, -0.01, 0.03
        "orbit/variance": [0.17, 0.18, 0.18],  # d = -0.07, -0.06, -0.07
        "val/knn_acc": [0.93, 0.95, 0.94],  # d = -0.03, -0.04, -0.02
        "geometry/uniformity": [-3.1, -3.0, -3.2],
        "geometry/alignment": [0.35, 0.36, 0.34],
    },
}
STUDY = {
    "compare": "loss",
    "reference": "orl",
    "against": ["ntxent", "orl_mean_tension"],
    "claims": [
        {"metric": "orbit/anchor_view_cos", "expect": "higher"},
        {"metric": "orbit/variance", "expect": "lower"},
        {"metric": "val/knn_acc", "expect": "higher"},
    ],
    "report": ["geometry/uniformity"],
}


def p_two_dof(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom: 1 - |t| / sqrt(t^2 + 2)."""
    return 1 - abs(t) / math.sqrt(t * t + 2)


@pytest.fixture
def study_sweep(tmp_path):
    sweep_dir = tmp_path / "study"
    sweep_dir.mkdir()
    multirun = {
        "hydra": {
            "sweeper": {"params": {"loss": ",".join(METRICS), "seed": "0,1,2"}},
            "overrides": {"task": ["+experiment=orl_controls"]},
        },
        "study": STUDY,
    }
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    num = 0
    for loss, metrics in METRICS.items():
        for seed in range(SEEDS):
            job_dir = sweep_dir / f"{num}_loss={loss},seed={seed}"
            job_dir.mkdir()
            result = {
                "status": "ok",
                "job_num": num,
                "swept": {"loss": loss, "seed": seed},
                "metrics": {name: values[seed] for name, values in metrics.items()},
                "wall_time_s": 60.0,
            }
            (job_dir / "result.json").write_text(json.dumps(result))
            num += 1
    return sweep_dir


def test_every_logged_metric_can_be_a_column(study_sweep):
    jobs = report.load_jobs(study_sweep)[1]
    logged = report.logged_metrics(jobs)
    assert "classes/within_cos" in logged and len(logged) == 6
    chosen = report.select_metrics(
        ["orbit/*", "val/knn_acc", "orbit/variance", "nothing/x"], logged
    )
    assert chosen == ["orbit/anchor_view_cos", "orbit/variance", "val/knn_acc", "nothing/x"]
    assert report.select_metrics(["all"], logged) == logged
    result = report.build_report(study_sweep, metrics=["classes/*", "nothing/x"])
    assert result.metrics == ["classes/within_cos", "nothing/x"]
    orl = next(row for row in result.summary if row["loss"] == "orl")
    assert orl["classes/within_cos"] == pytest.approx(0.6)
    assert "Not logged by any job: nothing/x." in (study_sweep / "sweep_report.md").read_text()


def test_claims_are_judged_over_one_holm_family(study_sweep):
    result = report.build_report(study_sweep)
    claims = {c.claim.metric: c for c in result.evidence.claims}
    assert {m: c.verdict for m, c in claims.items()} == {
        "orbit/anchor_view_cos": "not resolved",  # higher than NT-Xent; the control: noise
        "orbit/variance": "supported",  # lower than both
        "val/knn_acc": "contradicted",  # lower than NT-Xent, not higher
    }
    # The family's 6 p-values by hand (paired, 2 dof), smallest first: variance against the
    # control t = -20 (d = -0.07, -0.06, -0.07), variance and cosine against NT-Xent t = -+17.32
    # (s = 0.01), kNN against NT-Xent t = -8.66, against the control t = -5.20, cosine against
    # the control t = 1.32. Holm multiplies them by 6, 5, 4, 3, 2, 1, keeping them increasing.
    rows = {(c.metric, c.other): c for r in claims.values() for c in r.comparisons}
    p_variance = p_two_dof(20.0)
    p_ntxent = p_two_dof(10 * math.sqrt(3))
    p_knn = p_two_dof(-0.05 / (0.01 / math.sqrt(3)))
    p_knn_control = p_two_dof(-0.03 / (0.01 / math.sqrt(3)))
    assert rows[("orbit/variance", "orl_mean_tension")].p_holm == pytest.approx(6 * p_variance)
    assert rows[("orbit/variance", "ntxent")].p_holm == pytest.approx(5 * p_ntxent, rel=1e-6)
    assert rows[("val/knn_acc", "ntxent")].p_holm == pytest.approx(3 * p_knn, rel=1e-6)
    knn_control = rows[("val/knn_acc", "orl_mean_tension")]
    assert knn_control.p_holm == pytest.approx(2 * p_knn_control, rel=1e-6)  # 0.070
    assert knn_control.difference.p < 0.05 < knn_control.p_holm  # significant alone, not here
    assert knn_control.verdict == "no difference detected"

    text = (study_sweep / "sweep_report.md").read_text()
    last = text.rstrip().splitlines()[-3:]  # the report ends with one line per claim
    assert last[0].startswith(
        "- **NOT RESOLVED**: orbit/anchor_view_cos, orl higher than each of ntxent, "
        "orl_mean_tension: ntxent: +0.1 ["
    )
    assert last[1].startswith("- **SUPPORTED**: orbit/variance, orl lower than each of")
    assert f"p Holm {5 * p_ntxent:.3g})" in last[1]
    assert last[2].startswith("- **CONTRADICTED**: val/knn_acc, orl higher than")
    assert "Holm-adjusted over the 6 comparisons of the claims (one family)" in text
    # Uniformity beside the claims, from the comparison table (its own family of 2).
    assert "- geometry/uniformity: ntxent: +0.1 [" in text
    assert "## Comparisons with loss=orl" in text


def test_the_plane_needs_a_temperature_curve(study_sweep):
    result = report.build_report(study_sweep)
    plane = result.evidence.plane
    assert list(plane.lines) == ["orl", "ntxent", "orl_mean_tension"]
    (point,) = plane.lines["orl"]
    assert point.uniformity == pytest.approx(-3.0) and point.alignment == pytest.approx(0.31)
    assert {p.kind for p in plane.placements} == {"not resolved"}  # one temperature: no curve
    assert (study_sweep / "sweep_report_plane.png").stat().st_size > 5000
    text = (study_sweep / "sweep_report.md").read_text()
    assert "![plane](sweep_report_plane.png)" in text
    assert "**orl**: not resolved against ntxent's temperature curve." in text


def test_the_command_line_rebuilds_and_compares(study_sweep, capsys):
    assert main([str(study_sweep)]) == 0
    first = (study_sweep / "sweep_report.md").read_text()
    assert main([str(study_sweep)]) == 0
    assert (study_sweep / "sweep_report.md").read_text() == first  # the directory's function
    assert main([str(study_sweep), "--compare", "loss", "--reference", "ntxent"]) == 0
    text = (study_sweep / "sweep_report.md").read_text()
    assert "## Comparisons with loss=ntxent" in text and "| orl | orbit/variance |" in text
    assert "## Claims: loss=orl" in text  # the study's claims stay the study's
    capsys.readouterr()
    assert main([str(study_sweep), "--compare", "loss", "--reference", "orll"]) == 2
    assert "--reference='orll' is invalid: must be one of the values of loss" in (
        capsys.readouterr().err
    )
    assert main([str(study_sweep), "--list-metrics"]) == 0
    assert capsys.readouterr().out.split() == report.logged_metrics(
        report.load_jobs(study_sweep)[1]
    )


@pytest.mark.parametrize("preset", ["orl_controls", "orl_controls_temperature"])
def test_a_study_preset_is_checked_before_the_sweep_starts(train_config, tmp_path, preset, capsys):
    config = train_config(f"+experiment={preset}", f"hydra.sweep.dir={tmp_path}", hydra=True)
    SweepReport().on_multirun_start(config)  # a valid study: multirun.yaml saved
    assert (tmp_path / "multirun.yaml").is_file()
    bad = train_config(
        f"+experiment={preset}",
        "study.reference=orll",
        f"hydra.sweep.dir={tmp_path}/bad",
        hydra=True,
    )
    with pytest.raises(SystemExit) as exit_:
        SweepReport().on_multirun_start(bad)
    assert exit_.value.code == 2 and not (tmp_path / "bad").exists()
    assert (
        "orbitcl: error: study.reference='orll' is invalid: must be one of the values of loss "
        "the sweep runs (ntxent, orl" in capsys.readouterr().err
    )


def test_figures_take_one_job_per_setting_and_say_why_they_are_missing(study_sweep):
    rows = [
        {"job": "0", "loss": "ntxent", "seed": 0, "status": "failed"},
        {"job": "1", "loss": "ntxent", "seed": 1, "status": "ok"},
        {"job": "2", "loss": "ntxent", "seed": 2, "status": "ok"},
        {"job": "3", "loss": "orl", "seed": 1, "status": "ok"},
        {"job": "4", "loss": "orl", "seed": 0, "status": "ok"},
    ]
    # Seed 0 where it finished, else the setting's first finished job.
    assert pick_jobs(rows, ["loss", "seed"], "seed", 0) == {"ntxent": "1", "orl": "4"}
    # The hand-written jobs have no checkpoints: the report is written and says why.
    result = report.build_report(study_sweep, figures=True)
    assert result.evidence.figures == [] and "no checkpoint at" in result.evidence.figures_error
    text = (study_sweep / "sweep_report.md").read_text()
    assert (
        "## Figures\n\nOne checkpoint per setting (seed=0, else the setting's first finished "
        in text
    )
    assert "Not drawn: FileNotFoundError: no checkpoint at" in text
    assert text.rstrip().splitlines()[-1].startswith("- **")  # the claims still end it


def test_the_plane_says_whether_a_loss_acts_like_a_temperature(tmp_path):
    # NT-Xent at tau 0.2 and 1.0: (uniformity, alignment) ~ (-3, 0.2) and (-2, 0.6), +-0.01 over
    # seeds; ORL at tau 0.5 on the segment between them, orl_detached well below it.
    points = {
        ("ntxent", 0.2): (-3.0, 0.2),
        ("ntxent", 1.0): (-2.0, 0.6),
        ("orl", 0.5): (-2.5, 0.4),
        ("orl_detached", 0.5): (-2.5, 0.2),
        ("orl_mean_tension", 0.5): (-1.0, 0.9),  # less uniform than NT-Xent gets
    }
    params = {
        "loss": "ntxent,orl,orl_detached,orl_mean_tension",
        "loss.temperature": "0.2,0.5,1.0",
        "seed": "0,1,2",
    }
    multirun = {"hydra": {"sweeper": {"params": params}, "overrides": {"task": []}}}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    num = 0
    for (loss, temperature), (u, a) in points.items():
        for seed, noise in enumerate([0.0, 0.01, -0.01]):
            job_dir = tmp_path / str(num)
            job_dir.mkdir()
            metrics = {"geometry/uniformity": u + noise, "geometry/alignment": a + noise}
            swept = {"loss": loss, "loss.temperature": temperature, "seed": seed}
            result = {"status": "ok", "job_num": num, "swept": swept, "metrics": metrics}
            (job_dir / "result.json").write_text(json.dumps(result))
            num += 1
    report.build_report(tmp_path)  # no study: the losses against NT-Xent's curve
    text = (tmp_path / "sweep_report.md").read_text()
    assert (
        "- **orl** lies on ntxent's temperature curve at every loss.temperature run, within seed "
        "noise: it acts like a temperature.\n  - loss.temperature=0.5: on the curve" in text
    )
    assert (
        "- **orl_detached** lies off ntxent's temperature curve, below it (lower alignment at "
        "the same uniformity): something no temperature of ntxent does.\n"
        "  - loss.temperature=0.5: below the curve by -0.2 in alignment" in text
    )
    assert (
        "- **orl_mean_tension**: not resolved, its uniformity lies beyond what ntxent reaches at "
        "the loss.temperature run: sweep a wider range." in text
    )

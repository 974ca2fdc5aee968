"""The diagnostics end to end: tiny digits runs of `python -m orbitcl.train` with the callbacks
on (CSV and offline W&B) and off, then `orbitcl.evaluate` and `orbitcl.analyze` on their
checkpoints."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.wandb_records import history
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import OmegaConf

from orbitcl import analyze, evaluate
from orbitcl.callbacks import OrbitDiagnostics, TensionMonitor, UMAPPlot
from orbitcl.experiments import analysis
from orbitcl.experiments.runs import TrainedRun

TENSION = ["tension/mean", "tension/median", "tension/p05", "tension/p95", "tension/clamped_frac"]
ORBIT = ["anchor_view_cos", "variance", "pairwise_cos"]
GEOMETRY = ["alignment", "uniformity"]
# Projector space under orbit/ and geometry/, encoder space under orbit/encoder/, ...
VALIDATION = [f"orbit/{s}{m}" for s in ("", "encoder/") for m in ORBIT] + [
    f"geometry/{s}{m}" for s in ("", "encoder/") for m in GEOMETRY
]
CLASSES = ["classes/simplex_deviation", "classes/within_cos", "classes/between_cos", "classes/gap"]
FAST = ["dataset.num_workers=0", "trainer.enable_progress_bar=false"]
NO_DIAGNOSTICS = [
    "callbacks.tension=null",
    "callbacks.orbit=null",
    "callbacks.umap=null",
    "callbacks.similarity=null",
    "callbacks.class_geometry=null",
    "callbacks.spectrum=null",
    "callbacks.collapse=null",
]


def train(run_dir: Path, *overrides: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orbitcl.train", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# Runs on digits (5 steps per epoch), each trained the first time a test asks for it.
RUNS = {
    # CSV, 2 epochs, tension every 3 steps; no UMAP (the W&B run draws one; switching off works)
    "ntxent": [
        "logger=csv",
        "trainer.max_epochs=2",
        "callbacks.tension.every_n_steps=3",
        "callbacks.umap=null",
        *FAST,
    ],
    # the same training with every diagnostic off
    "ntxent_off": ["logger=csv", "trainer.max_epochs=2", *NO_DIAGNOSTICS, *FAST],
    # W&B offline, 3 steps (ends mid-epoch: train.py validates once more), tension every step
    "orl": [
        "loss=orl",
        "logger=wandb",
        "trainer.max_steps=3",
        "callbacks.tension.every_n_steps=1",
        "callbacks.umap.n_images=60",
        *FAST,
    ],
}
# The same run logged to TensorBoard: the same scalars, histograms and images, but for UMAP's
# (the W&B run draws it; its numba compile costs ~20 s in each new process).
RUNS["orl_tensorboard"] = [
    *RUNS["orl"][:1],
    "logger=tensorboard",
    *RUNS["orl"][2:4],
    "callbacks.umap=null",
    *FAST,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`run(name)` -> the run directory of RUNS[name], trained once per test module."""
    root = tmp_path_factory.mktemp("diagnostics")

    def trained(name: str) -> Path:
        if not (root / name).exists():
            train(root / name, *RUNS[name])
        return root / name

    return trained


def metric_rows(run_dir: Path, name: str) -> list[tuple[int, float]]:
    """(step, value) of every row of metrics.csv that holds `name`."""
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f) if r.get(name)]


def pngs(run_dir: Path) -> list[str]:
    files = sorted((run_dir / "plots").glob("*.png"))
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    return [f.name for f in files]


def test_csv_run_logs_every_diagnostic_and_writes_the_plots(run):
    run_dir = run("ntxent")
    assert [step for step, _ in metric_rows(run_dir, "tension/mean")] == [3, 6, 9]
    for step in range(3):
        stats = {name: metric_rows(run_dir, name)[step][1] for name in TENSION}
        assert 0 < stats["tension/p05"] <= stats["tension/median"] <= stats["tension/p95"] <= 1
        assert 0 < stats["tension/mean"] < 1 and 0 <= stats["tension/clamped_frac"] < 1
    for name in VALIDATION:
        assert len(metric_rows(run_dir, name)) == 2, name  # one per validation (epoch)
    last = {name: metric_rows(run_dir, name)[-1][1] for name in VALIDATION}
    for space in ("", "encoder/"):
        assert -1 <= last[f"orbit/{space}anchor_view_cos"] <= 1
        assert 0 <= last[f"orbit/{space}variance"] <= 1
        # Over the same pairs of views of one image, alignment = 2 - 2 * their mean cosine.
        expected = 2 - 2 * last[f"orbit/{space}pairwise_cos"]
        assert last[f"geometry/{space}alignment"] == pytest.approx(expected, abs=1e-4)
        assert -4 * 200 / 199 <= last[f"geometry/{space}uniformity"] <= 0
    for name in CLASSES:
        assert len(metric_rows(run_dir, name)) == 2, name  # one per validation
    last = {name: metric_rows(run_dir, name)[-1][1] for name in CLASSES}
    assert -1 <= last["classes/between_cos"] < last["classes/within_cos"] <= 1  # trained: apart
    assert last["classes/gap"] == pytest.approx(
        last["classes/within_cos"] - last["classes/between_cos"], abs=1e-6
    )
    assert 0 <= last["classes/simplex_deviation"] <= 1 + 1 / 9
    for name in ["spectrum/rankme", "spectrum/encoder/lidar", "classes/nc1"]:
        assert len(metric_rows(run_dir, name)) == 2, name  # callbacks.spectrum, one per validation
    for name in ["collapse/std", "collapse/encoder/std"]:
        assert len(metric_rows(run_dir, name)) == 2, name  # callbacks.collapse, one per validation
    # Unit vectors in d = 128: at most 1/sqrt(d) (metrics.collapse); NT-Xent does not collapse.
    assert 0.2 / 128**0.5 < metric_rows(run_dir, "collapse/std")[-1][1] <= 1.01 / 128**0.5
    assert pngs(run_dir) == [  # callbacks.umap=null: no UMAP
        "class_geometry_step000005.png",
        "class_geometry_step000010.png",
        "class_tension_step000005.png",  # callbacks.spectrum (tests/callbacks/test_spectrum_...)
        "class_tension_step000010.png",
        "orbit_cos_step000005.png",
        "orbit_cos_step000010.png",
        "similarity_step000005.png",  # callbacks.similarity (tests/callbacks/test_similarity.py)
        "similarity_step000010.png",
        "spectrum_step000005.png",
        "spectrum_step000010.png",
        "tension_step000005.png",
        "tension_step000010.png",
    ]


@pytest.mark.slow  # a third training run
def test_diagnostics_switch_off_and_never_change_training(run):
    on, off = run("ntxent"), run("ntxent_off")
    assert not (off / "plots").exists()
    header = (off / "metrics.csv").read_text().splitlines()[0]
    assert "val/knn_acc" in header and "tension" not in header and "orbit" not in header
    assert "similarity" not in header and "spectrum" not in header and "collapse" not in header
    weights = [
        torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run_dir in (on, off)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_wandb_run_holds_the_metrics_histograms_and_images(run):
    run_dir = run("orl")
    rows = history(run_dir)
    logged = {key for row in rows for key in row}
    assert set(TENSION + VALIDATION + CLASSES) <= logged
    tension = [row for row in rows if "tension/hist/_type" in row]
    assert [row["trainer/global_step"] for row in tension] == [1, 2, 3]
    assert all(row["tension/hist/_type"] == "histogram" for row in tension)
    assert sum(tension[0]["tension/hist/values"]) == 2 * 256 * (2 * 256 - 2)  # every negative
    orbit_hist = [row for row in rows if "orbit/anchor_view_cos_hist/_type" in row]
    assert len(orbit_hist) == 1 and sum(orbit_hist[0]["orbit/anchor_view_cos_hist/values"]) == 2000
    plot_keys = ("tension/hist_plot", "orbit/anchor_view_cos_plot", "umap/projector")
    for key in (*plot_keys, "classes/prototype_cosines"):
        images = [row for row in rows if f"{key}/_type" in row]
        assert len(images) == 1 and images[0][f"{key}/_type"] == "images/separated", key
        (media,) = images[0][f"{key}/filenames"]
        assert next(run_dir.glob(f"wandb/offline-run-*/files/{media}")).stat().st_size > 1000
    # The run stopped at step 3, mid-epoch: train.py's extra validation drew the orbit and UMAP
    # plots, and the epoch's end its tension plot.
    assert pngs(run_dir) == [
        "class_geometry_step000003.png",
        "class_tension_step000003.png",
        "orbit_cos_step000003.png",
        "similarity_step000003.png",
        "spectrum_step000003.png",
        "tension_step000003.png",
        "umap_step000003.png",
    ]


def test_tensorboard_run_holds_the_metrics_histograms_and_images(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = run("orl_tensorboard")
    # A directory of event files: the validation after fit (a run ending mid-epoch) writes anew.
    events = run_dir / "tensorboard"
    board = EventAccumulator(str(events), size_guidance={"histograms": 0, "images": 0}).Reload()
    assert set([*TENSION, *VALIDATION, *CLASSES, "val/knn_acc"]) <= set(board.Tags()["scalars"])
    tension = board.Histograms("tension/hist")
    assert [event.step for event in tension] == [1, 2, 3]
    assert tension[0].histogram_value.num == 2 * 256 * (2 * 256 - 2)  # every negative
    assert sum(tension[0].histogram_value.bucket) == 2 * 256 * (2 * 256 - 2)
    (orbit_hist,) = board.Histograms("orbit/anchor_view_cos_hist")
    assert sum(orbit_hist.histogram_value.bucket) == 2000
    for key in ("tension/hist_plot", "orbit/anchor_view_cos_plot", "classes/prototype_cosines"):
        (image,) = board.Images(key)
        assert image.step == 3 and image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n", key


def test_evaluate_reports_probe_and_knn_accuracy(run, tmp_path, capsys):
    checkpoint = run("ntxent") / "checkpoints" / "last.ckpt"
    out = tmp_path / "evaluate.json"
    assert evaluate.main([str(checkpoint), "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("ntxent-tau0.5 (") and "linear probe top-1" in printed
    (result,) = json.loads(out.read_text())
    # The same kNN as the training's last validation, on the same final weights.
    _, trained_knn = metric_rows(run("ntxent"), "val/knn_acc")[-1]
    assert result["knn_top1"] == pytest.approx(trained_knn, abs=1e-6)
    assert 0.5 < result["probe_top1"] <= 1  # 10 classes: chance is 0.1


def test_analyze_compares_runs_on_the_callbacks_orbits(run, tmp_path, capsys):
    ntxent, orl = run("ntxent"), run("orl")
    out = tmp_path / "analysis"
    argv = [str(ntxent), str(orl), "--out", str(out), "--umap-images", "60", "--device", "cpu"]
    assert analyze.main(argv) == 0
    assert "| ntxent-tau0.5 |" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "anchor_view_cos.png",
        "anchor_view_cos_encoder.png",
        "class_geometry.json",
        "class_geometry.md",
        "class_geometry.png",
        "class_tension.json",
        "class_tension.png",
        "table.json",
        "table.md",
        "umap.png",
    ]
    tension = json.loads((out / "class_tension.json").read_text())
    assert list(tension) == ["ntxent-tau0.5", "orl-tau0.5"]
    assert -1 <= tension["orl-tau0.5"]["spearman_confusion"] <= 1
    # Class geometry on the callback's test images: its last validation's numbers; NT-Xent's
    # optimum ignores classes, so there is no prediction to set beside them.
    geometry = json.loads((out / "class_geometry.json").read_text())
    assert [row["name"] for row in geometry] == ["ntxent-tau0.5", "orl-tau0.5"]
    for name in (*CLASSES, "classes/size_correlation"):  # digits' classes differ in size
        _, logged = metric_rows(ntxent, name)[-1]
        assert geometry[0]["trained"][name.split("/")[1]] == pytest.approx(logged, abs=1e-5), name
    assert geometry[0]["predicted"] is None
    rows = json.loads((out / "table.json").read_text())
    assert [row["name"] for row in rows] == ["ntxent-tau0.5", "orl-tau0.5"]
    assert all(1 <= row["rankme"] <= 128 and row["alpha"] > 0 for row in rows)
    # Same anchors, views and weights as the callback's last validation: the same numbers.
    for group, metrics in (("orbit", ORBIT), ("geometry", GEOMETRY)):
        for metric in metrics:
            _, logged = metric_rows(ntxent, f"{group}/{metric}")[-1]
            assert rows[0][metric] == pytest.approx(logged, abs=1e-5), metric
    (orl_validation,) = [r for r in history(orl) if "orbit/variance" in r]
    assert rows[1]["variance"] == pytest.approx(orl_validation["orbit/variance"], abs=1e-5)
    assert rows[1]["knn_top1"] == pytest.approx(orl_validation["val/knn_acc"], abs=1e-6)
    assert all(0.5 < row["probe_top1"] <= 1 for row in rows)
    table = (out / "table.md").read_text().splitlines()
    assert table[0].startswith("| run | orbit variance | anchor-view cos |")
    assert [line.split(" | ")[0] for line in table[2:4]] == ["| ntxent-tau0.5", "| orl-tau0.5"]
    assert table[2].endswith(f"| {rows[0]['probe_top1']:.4f} |")


def test_analyze_says_what_is_missing(tmp_path, capsys):
    assert analyze.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: TensionMonitor(every_n_steps=0), "every_n_steps=0"),
        (lambda: TensionMonitor(t_min=0.0), "t_min=0.0"),
        (lambda: OrbitDiagnostics(n_views=1), "n_views=1"),
        (lambda: UMAPPlot(every_n_epochs=0), "every_n_epochs=0"),
    ],
)
def test_callbacks_reject_bad_settings(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_analyze_compares_only_runs_on_one_dataset(caplog):
    def run(name, dataset):
        cfg = OmegaConf.create({"dataset": dataset})
        return TrainedRun(name, Path(name), Path(name), cfg, None, None, None, 0)

    digits = {"_target_": "orbitcl.data.DigitsDataModule", "augment": {"p": 1}}
    mnist = {"_target_": "orbitcl.data.MNISTDataModule", "augment": {"p": 1}}
    with pytest.raises(ValueError, match="compare runs on one dataset"):
        analysis.check_comparable([run("a", digits), run("b", mnist)])
    analysis.check_comparable([run("a", digits), run("b", digits)])
    assert not caplog.records
    analysis.check_comparable([run("a", digits), run("b", {**digits, "augment": {"p": 0}})])
    assert "b used another augmentation" in caplog.text


@pytest.mark.parametrize(
    "epoch,step,max_epochs,max_steps,validating,due",
    [
        (0, 5, 20, -1, False, False),
        (4, 25, 20, -1, False, True),  # every 5 epochs
        (6, 35, 7, -1, False, True),  # the last epoch
        (6, 35, -1, -1, False, False),  # max_epochs=-1: no last epoch
        (1, 9, 20, 9, False, True),  # the last step
        (1, 8, 20, 9, True, True),  # a stand-alone validation (train.py's after max_steps)
    ],
)
def test_umap_is_drawn_every_n_epochs_and_at_the_end(
    epoch, step, max_epochs, max_steps, validating, due
):
    state = SimpleNamespace(fn=TrainerFn.VALIDATING if validating else TrainerFn.FITTING)
    trainer = SimpleNamespace(
        current_epoch=epoch,
        global_step=step,
        max_epochs=max_epochs,
        max_steps=max_steps,
        state=state,
    )
    assert UMAPPlot(every_n_epochs=5)._due(trainer) is due

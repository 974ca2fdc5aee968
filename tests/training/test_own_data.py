"""Your own data and the field's protocols through the real command lines, on small files written
here: image folders with and without class folders (trained with SGD), CIFAR-100 and STL-10
(with LARS); then the kNN grid of `orbitcl.evaluate` and `orbitcl.export` on a trained run.

Each pair of runs is one sweep (`-m`), so that the ~8 s of imports are paid once per pair.
"""

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers.data_files import write_cifar100, write_image_folder, write_stl10
from helpers.train_cli import run_module
from hydra.utils import instantiate

from orbitcl import evaluate, export
from orbitcl.experiments.runs import load_run
from orbitcl.training.config import ConfigError
from orbitcl.training.fit import train

# Smoke runs (3 steps) of a small model; each job in <sweep dir>/<job number>, and no sweep
# report (not what is tested here; it costs seconds).
SMALL = ["+debug=smoke", "dataset.batch_size=8", "model=conv_small"]
SMALL += ["hydra.sweep.subdir=${hydra.job.num}", "~hydra.callbacks.sweep_report"]


def sweep(root: Path, *overrides: str, env: dict | None = None) -> tuple[Path, str]:
    """Runs `python -m orbitcl.train -m ...`; returns the sweep directory and stdout."""
    overrides = (*SMALL, *overrides, f"hydra.sweep.dir={root / 'sweep'}")
    result = run_module("-m", *overrides, cwd=root, env_extra=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for job in (root / "sweep").glob("[0-9]"):
        assert json.loads((job / "result.json").read_text())["status"] == "ok", job
    return root / "sweep", result.stdout


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def logged(run_dir: Path, name: str) -> list[float]:
    return [float(row[name]) for row in metrics(run_dir) if row.get(name)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """Job 0: class folders; job 1: a flat folder (optim=sgd)."""
    root = tmp_path_factory.mktemp("folders")
    write_image_folder(root / "pets", per_class=20)
    write_image_folder(root / "flat", per_class=30, classes=())
    roots = f"{root / 'pets'},{root / 'flat'}"
    sweep_dir, stdout = sweep(
        root, "dataset=image_folder", f"dataset.root={roots}", "dataset.image_size=16", "optim=sgd"
    )
    assert stdout.count("kNN accuracy") == stdout.count("online linear accuracy") == 1
    return sweep_dir


@pytest.fixture(scope="module")
def torchvision_sets(tmp_path_factory) -> Path:
    """Job 0: CIFAR-100; job 1: STL-10, training on its unlabeled split (optim=lars)."""
    root = tmp_path_factory.mktemp("torchvision_sets")
    write_cifar100(root / "data", n_train=48, n_test=16)
    write_stl10(root / "data", n_train=24, n_test=16, n_unlabeled=40)
    # The data folder by the environment: the sweep's base config (digits) has no data_dir.
    overrides = ["dataset=cifar100,stl10", "model.encoder.in_channels=3", "optim=lars"]
    sweep_dir, _ = sweep(root, *overrides, env={"ORBITCL_DATA_DIR": str(root / "data")})
    return sweep_dir


def test_class_folders_train_with_sgd_and_log_knn_and_linear_accuracy(folders):
    run_dir = folders / "0"
    assert len(logged(run_dir, "train/loss")) == 3
    assert len(logged(run_dir, "val/knn_acc")) == len(logged(run_dir, "val/linear_acc")) == 1
    # optim=sgd scales its lr linearly: 0.05 x 8 images / 256 (3 steps: no warm-up).
    assert logged(run_dir, "train/lr")[0] == pytest.approx(0.05 * 8 / 256)


def test_a_flat_folder_trains_and_says_once_that_evaluation_is_skipped(folders):
    run_dir = folders / "1"
    assert len(logged(run_dir, "train/loss")) == 3
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "val/knn_acc" not in header and "val/linear_acc" not in header
    lines = (run_dir / "train.log").read_text().splitlines()
    skipped = [line for line in lines if " skipped: it needs class labels" in line]
    assert len(skipped) == 2 and all("is a flat folder of images" in line for line in skipped)
    assert "callbacks.online_linear (OnlineLinearClassifier) skipped" in skipped[0]
    assert "the kNN monitor (val/knn_acc) skipped" in skipped[1]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["dataset=image_folder", "dataset.root={flat}"], "is a flat folder of images"),
        (["dataset=stl10", "dataset.data_dir={data}"], "holds STL-10's unlabeled images"),
    ],
)
def test_a_label_using_loss_stops_before_training(train_config, tmp_path, overrides, message):
    write_image_folder(tmp_path / "flat", per_class=10, classes=())
    write_stl10(tmp_path / "data")
    paths = {"flat": tmp_path / "flat", "data": tmp_path / "data"}
    cfg = train_config("loss=supcon", *(o.format(**paths) for o in overrides))
    with pytest.raises(ConfigError, match=f"^loss=SupConLoss is invalid: .*{message}"):
        train(cfg, tmp_path / "run")
    assert list(tmp_path.iterdir()) == [tmp_path / "flat", tmp_path / "data"]  # nothing written


def test_cifar100_and_stl10_train_with_lars(torchvision_sets):
    cifar100, stl10 = torchvision_sets / "0", torchvision_sets / "1"
    for run_dir in (cifar100, stl10):
        assert len(logged(run_dir, "train/loss")) == 3
        assert len(logged(run_dir, "val/knn_acc")) == 1  # STL-10: the labelled train split votes
        assert logged(run_dir, "train/lr")[0] == pytest.approx(1.0 * 8 / 256)  # LARS's base lr 1
    assert len(logged(cifar100, "val/linear_acc")) == 1
    # STL-10 trained on unlabeled images only: the online classifier has nothing to learn from.
    assert not logged(stl10, "val/linear_acc")
    skipped = "callbacks.online_linear (OnlineLinearClassifier) skipped: it needs class labels on "
    skipped += "the training images (dataset.train_split='unlabeled' holds STL-10's unlabeled"
    assert skipped in (stl10 / "train.log").read_text()


def test_evaluate_prints_the_knn_grid(folders, tmp_path, capsys):
    out = tmp_path / "grid.json"
    argv = [str(folders / "0"), "--knn-k", "1,3,200", "--knn-t", "0.07,0.1"]
    argv += ["--features", "encoder,projector", "--json", str(out), "--device", "cpu"]
    assert evaluate.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "linear probe top-1" in printed[0] and printed[1].startswith("kNN top-1 (cosine;")
    assert printed[2] == "| features | k | t=0.07 | t=0.1 |"
    rows = [line.split(" | ")[:2] for line in printed[4:]]
    assert rows == [[f"| {s}", k] for s in ("encoder", "projector") for k in ("1", "3", "200")]
    (result,) = json.loads(out.read_text())
    assert len(result["knn"]) == 12
    first = result["knn"][0]
    assert (first["features"], first["k"], first["temperature"]) == ("encoder", 1, 0.07)
    assert result["knn_top1"] == pytest.approx(first["top1"], abs=1e-6)
    assert f"| encoder | 1 | {first['top1']:.4f} |" in printed[4]
    assert evaluate.main([str(folders / "0"), "--knn-metric", "euclidean"]) == 0
    assert "kNN top-1 (euclidean;" in capsys.readouterr().out
    assert evaluate.main([str(folders / "1")]) == 2  # the flat folder: nothing to vote with
    assert "without class labels" in capsys.readouterr().err


def test_export_writes_a_plain_state_dict_the_rebuilt_encoder_loads(folders, tmp_path, capsys):
    out = tmp_path / "export" / "encoder.pt"
    assert export.main([str(folders / "0"), "--out", str(out)]) == 0
    description = json.loads(out.with_suffix(".json").read_text())
    state = torch.load(out, weights_only=True)
    assert not any(key.startswith("encoder.") for key in state)
    assert description["encoder"]["_target_"] == "orbitcl.models.ConvEncoder"
    assert description["encoder"]["in_channels"] == 3  # followed dataset.channels
    encoder = instantiate(description["encoder"])
    encoder.load_state_dict(state, strict=True)
    trained = load_run(folders / "0").encoder
    images = torch.randn(4, 3, 16, 16)
    assert encoder.eval()(images).shape == (4, description["out_dim"])
    assert torch.equal(encoder(images), trained(images))
    assert description["trained"]["global_step"] == 3

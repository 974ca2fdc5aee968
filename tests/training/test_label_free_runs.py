"""Every default callback on, on data with and without labels: each run ends, and what the data
cannot feed (class labels, class labels on the training images) is skipped with one log line
at the start, never failed on at a validation."""

import logging

import pytest
import torch
from helpers.data_files import write_image_folder, write_stl10
from helpers.in_process import SMALL_RUN, run_dir_overrides

import orbitcl.data.datamodule
from orbitcl.callbacks.class_geometry import ClassGeometry
from orbitcl.callbacks.online_linear import OnlineLinearClassifier
from orbitcl.callbacks.requirements import unmet
from orbitcl.data import STL10DataModule
from orbitcl.training.fit import train

ONLINE_LINEAR = "callbacks.online_linear (OnlineLinearClassifier)"
CLASS_GEOMETRY = "callbacks.class_geometry (ClassGeometry)"
KNN = "the kNN monitor (val/knn_acc)"
NO_CLASSES = "(dataset.root='{root}' is a flat folder of images, without class folders)"
# The metric each callback logs at its validation, or every step.
LOGGED = {
    "callbacks.tension": "tension/mean",
    "callbacks.orbit": "orbit/variance",
    "callbacks.similarity": "similarity/neg_cross_var",
    "callbacks.class_geometry": "classes/gap",
    "callbacks.spectrum": "spectrum/rankme",
    "callbacks.online_linear": "val/linear_acc",
    "knn": "val/knn_acc",
}


def small_mnist(load_mnist):
    """MNIST's first 256 train and 128 test images: rotating all 70,000 takes seconds."""

    def load(data_dir, train, download):
        images, labels = load_mnist(data_dir, train, download)
        n = 256 if train else 128
        return images[:n], labels[:n]

    return load


@pytest.mark.parametrize(
    "case",
    ["digits", "flat_folder", "folder_without_test_split", "rotated_mnist", "stl10_unlabeled"],
)
def test_every_default_callback_runs_or_is_skipped_with_one_line(
    case, tmp_path, train_config, caplog, monkeypatch
):
    data = tmp_path / "data"
    dataset = {
        "digits": ["dataset=digits"],
        "flat_folder": ["dataset=image_folder", f"dataset.root={data}", "dataset.image_size=16"],
        "folder_without_test_split": [
            "dataset=image_folder",
            f"dataset.root={data}",
            "dataset.image_size=16",
        ],
        "rotated_mnist": ["dataset=rotated_mnist"],
        "stl10_unlabeled": ["dataset=stl10", f"dataset.data_dir={data}"],
    }[case]
    if case == "flat_folder":
        write_image_folder(data, per_class=24, classes=())
    elif case == "folder_without_test_split":
        write_image_folder(data, per_class=12)  # cat/, dog/: a test split is held out
    elif case == "stl10_unlabeled":
        write_stl10(data, n_train=16, n_test=16, n_unlabeled=24)
        dataset += ["model.encoder.in_channels=3"]
    elif case == "rotated_mnist":
        loader = small_mnist(orbitcl.data.datamodule.load_mnist)
        monkeypatch.setattr(orbitcl.data.datamodule, "load_mnist", loader)
    skipped = {
        "digits": [],
        "flat_folder": [ONLINE_LINEAR, CLASS_GEOMETRY, KNN],
        "folder_without_test_split": [],
        "rotated_mnist": [ONLINE_LINEAR],
        "stl10_unlabeled": [ONLINE_LINEAR],
    }[case]
    cfg = train_config(*dataset, *SMALL_RUN, *run_dir_overrides(tmp_path / "run"))
    (tmp_path / "run").mkdir()  # as Hydra makes it
    with caplog.at_level(logging.INFO):
        metrics = train(cfg, tmp_path / "run")

    lines = [r.getMessage() for r in caplog.records if " skipped: it needs " in r.getMessage()]
    assert [line.split(" skipped: ")[0] for line in lines] == skipped
    if case == "flat_folder":
        assert all(NO_CLASSES.format(root=data) in line for line in lines)
        assert all(line.count("(dataset.root=") == 1 for line in lines)  # each reason once
        need = "it needs class labels on the test split and class labels on the training images ("
        assert need in lines[0]
    if case == "rotated_mnist":  # its training labels are angles
        assert "label_space='circle' labels each training image" in lines[0]
    if case == "stl10_unlabeled":
        assert "train_split='unlabeled' holds STL-10's unlabeled images" in lines[0]
    skipped_keys = {"knn" if line == KNN else line.split()[0] for line in skipped}
    ran = LOGGED.keys() - skipped_keys
    assert {LOGGED[key] for key in ran} <= set(metrics), sorted(metrics)
    assert not {LOGGED[key] for key in LOGGED.keys() - ran} & set(metrics)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    plots = {p.name.split("_step")[0] for p in (tmp_path / "run" / "plots").glob("*.png")}
    assert {"umap", "orbit_cos", "similarity", "tension"} <= plots
    assert ("class_geometry" in plots) == (CLASS_GEOMETRY not in skipped)


def test_stl10_with_its_labelled_training_images_keeps_the_online_classifier(tmp_path):
    write_stl10(tmp_path)
    needs = OnlineLinearClassifier.needs
    labelled = STL10DataModule(data_dir=tmp_path, train_split="train+unlabeled", download=False)
    assert unmet(needs, labelled) == []
    unlabeled = STL10DataModule(data_dir=tmp_path, train_split="unlabeled", download=False)
    assert unmet(needs, unlabeled) == [
        "class labels on the training images (dataset.train_split='unlabeled' holds STL-10's "
        "unlabeled images)"
    ]
    assert unmet(ClassGeometry.needs, unlabeled) == []  # its test split is labelled

"""What the losses need from the training labels, checked and served before training
(orbitcl.training.labels): the kind of labels, a subset the data cannot give, X-CLR's
class_means similarity and the class counts kept in the run."""

import json

import pytest
import torch
import torch.nn.functional as F

from orbitcl.data import DigitsDataModule, RotatedMNISTDataModule, load_digits
from orbitcl.data.stats import class_mean_cosines
from orbitcl.losses import NTXentLoss, SupConLoss, XCLRLoss, YAwareLoss
from orbitcl.training.config import ConfigError
from orbitcl.training.labels import (
    check_labels,
    load_training_data,
    save_class_counts,
    serve_class_similarity,
)

ROTATED = RotatedMNISTDataModule(data_dir="unused")  # built, never loaded: checks read no data


@pytest.mark.parametrize(
    "datamodule,loss,message",
    [
        (
            DigitsDataModule(),
            YAwareLoss(),
            r"^loss=YAwareLoss is invalid: it needs continuous labels \(e.g. "
            r"dataset=rotated_mnist\), and DigitsDataModule labels its training images by class$",
        ),
        (
            ROTATED,
            SupConLoss(),
            r"^loss=SupConLoss is invalid: it needs the class of every training image, and "
            r"dataset.label_space='circle' labels each training image with its rotation angle",
        ),
        (ROTATED, XCLRLoss(class_similarity="class_means"), r"^loss=XCLRLoss is invalid"),
    ],
)
def test_losses_refuse_labels_of_the_other_kind(datamodule, loss, message):
    with pytest.raises(ConfigError, match=message):
        check_labels(datamodule, {"loss": loss})


def test_labels_of_the_right_kind_pass():
    check_labels(ROTATED, {"loss": YAwareLoss(), "aux.x.loss": NTXentLoss()})
    check_labels(DigitsDataModule(), {"loss": SupConLoss()})


def test_a_subset_the_data_cannot_give_names_the_field():
    datamodule = DigitsDataModule(class_counts=[500] * 10, num_workers=0)
    with pytest.raises(ConfigError, match=r"^dataset.class_counts=\[500, .*\] is invalid"):
        load_training_data(datamodule)


def test_class_means_similarity_is_served_from_the_training_split(tmp_path):
    datamodule = DigitsDataModule(imbalance_ratio=5, num_workers=0)
    counts = load_training_data(datamodule)
    loss = XCLRLoss(class_similarity="class_means")
    z_a, z_b, labels = torch.randn(6, 4), torch.randn(6, 4), torch.arange(6)
    with pytest.raises(ValueError, match="'class_means' has not been computed"):
        loss(z_a, z_b, labels)
    serve_class_similarity(datamodule, {"loss": loss})
    # The cosines of the mean images of the classes of the training subset, one class at a time.
    images, targets = datamodule.training_split
    means = torch.stack([images[targets == c].double().mean(0).flatten() for c in range(10)])
    expected = F.normalize(means, dim=1) @ F.normalize(means, dim=1).T
    torch.testing.assert_close(loss.class_similarity, expected, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(loss(z_a, z_b, labels))
    save_class_counts(tmp_path, datamodule, counts)
    record = json.loads((tmp_path / "class_counts.json").read_text())
    assert record == {
        "class_counts": counts,
        "imbalance_ratio": 5,
        "requested_class_counts": None,
        "subset_seed": 0,
    }
    assert counts == targets.bincount().tolist()


def test_class_means_need_every_class():
    images, labels = load_digits(train=True)
    with pytest.raises(ValueError, match="class 10 has no training image"):
        class_mean_cosines(images, labels, 11)

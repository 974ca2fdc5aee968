"""Rotated MNIST (orbitcl.data.rotated): each image turned once by its own seeded angle, the
angle its continuous training label on a circle or a line; kNN and class diagnostics keep the
digits."""

import math
import os
from pathlib import Path

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from orbitcl.data import MNISTDataModule, RotatedMNISTDataModule, load_mnist
from orbitcl.data.rotated import rotate

DATA_DIR = Path(os.environ["ORBITCL_DATA_DIR"])
pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "MNIST" / "raw").is_dir(), reason=f"no MNIST in {DATA_DIR}"
)
N = 600  # images per split in these tests: the first of MNIST's


@pytest.fixture(scope="module")
def mnist():
    """{train: (images, labels)} of MNIST's first N images."""
    return {
        train: tuple(x[:N] for x in load_mnist(DATA_DIR, train, download=False))
        for train in (True, False)
    }


@pytest.fixture
def rotated(mnist, monkeypatch):
    """`rotated(**kwargs)`: a set-up RotatedMNISTDataModule over the first N images."""
    monkeypatch.setattr(MNISTDataModule, "load_split", lambda self, train: mnist[train])

    def build(**kwargs) -> RotatedMNISTDataModule:
        datamodule = RotatedMNISTDataModule(data_dir=DATA_DIR, num_workers=0, **kwargs)
        datamodule.setup("fit")
        return datamodule

    return build


def test_rotate_is_torchvisions_bilinear_rotate(mnist):
    images = mnist[True][0][:5]
    degrees = torch.tensor([30.0, -75.0, 170.0, 5.0, -180.0])
    for image, angle, ours in zip(images, degrees, rotate(images, degrees), strict=True):
        expected = F.rotate(image, float(angle), interpolation=InterpolationMode.BILINEAR)
        assert torch.equal(ours, expected), float(angle)


def test_images_are_turned_once_by_their_label(mnist, rotated):
    circle = rotated(label_space="circle", rotation_seed=3)
    images, labels = circle.training_split
    assert labels.shape == (N, 2) and labels.dtype == torch.float32
    torch.testing.assert_close(labels.norm(dim=1), torch.ones(N))  # on the unit circle
    degrees = torch.atan2(labels[:, 1], labels[:, 0]).double().rad2deg()
    assert degrees.min() < -150 and degrees.max() > 150  # the whole circle (max_degrees 180)
    # Each image is its MNIST image turned by its label's angle (to float32 rounding).
    for i in (0, 1, 2):
        expected = rotate(mnist[True][0][i : i + 1], degrees[i : i + 1])
        assert (images[i].int() - expected[0].int()).abs().max() <= 1
    # Fixed per image: a new datamodule with the same seed gives the same images and labels.
    again = rotated(label_space="circle", rotation_seed=3).training_split
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)
    other = rotated(label_space="circle", rotation_seed=4).training_split
    assert not torch.equal(other[1], labels)


def test_line_labels_are_radians_of_the_same_angles(rotated):
    circle = rotated(label_space="circle", max_degrees=90).training_split[1]
    line = rotated(label_space="line", max_degrees=90).training_split[1]
    assert line.shape == (N,) and line.abs().max() <= math.pi / 2
    torch.testing.assert_close(line, torch.atan2(circle[:, 1], circle[:, 0]), atol=1e-6, rtol=0)


def test_validation_keeps_the_digits_of_rotated_images(mnist, rotated):
    datamodule = rotated()
    bank, queries = (loader.dataset for loader in datamodule.val_dataloader())
    assert torch.equal(bank.labels, mnist[True][1]) and torch.equal(queries.labels, mnist[False][1])
    assert torch.equal(bank.images, datamodule.training_split[0])  # the rotated training images
    assert not torch.equal(queries.images, mnist[False][0])  # the test images turned too
    assert datamodule.train_class_counts() is None  # training labels are angles
    assert "rotation angle" in datamodule.continuous_labels


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"label_space": "sphere"}, r"^label_space='sphere' is invalid: must be one of circle"),
        ({"max_degrees": 0}, r"^max_degrees=0 is invalid: must be in \(0, 180\]"),
        ({"imbalance_ratio": 10}, r"^imbalance_ratio=10 is invalid: it needs the class of every"),
    ],
)
def test_bad_settings_name_the_field(rotated, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rotated(**kwargs)

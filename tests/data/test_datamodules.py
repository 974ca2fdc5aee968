"""The data package on real data: the bundled digits and the offline MNIST / CIFAR-10 copies
in $ORBITCL_DATA_DIR (see conftest.py)."""

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torchvision.datasets import CIFAR10, MNIST
from torchvision.transforms import v2

from orbitcl.data import (
    CIFAR10DataModule,
    DataNotFoundError,
    DigitsDataModule,
    MNISTDataModule,
    load_cifar10,
    load_digits,
    load_mnist,
)

DATA_DIR = Path(os.environ["ORBITCL_DATA_DIR"])
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR10_SUBSET_TEST_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]

needs_mnist = pytest.mark.skipif(
    not (DATA_DIR / "MNIST" / "raw").is_dir(), reason=f"no MNIST in {DATA_DIR}"
)
needs_cifar10 = pytest.mark.skipif(
    not (DATA_DIR / "cifar-10-batches-py").is_dir(), reason=f"no CIFAR-10 in {DATA_DIR}"
)


def test_digits_split_is_fixed_stratified_and_uint8():
    (train_x, train_y), (test_x, test_y) = load_digits(train=True), load_digits(train=False)
    assert train_x.shape == (1437, 1, 8, 8) and test_x.shape == (360, 1, 8, 8)
    assert train_x.dtype == test_x.dtype == torch.uint8
    assert train_y.dtype == test_y.dtype == torch.int64
    assert train_x.max() == 255 and train_x.min() == 0  # 16 -> 255, 0 -> 0
    # Stratified: every class keeps its share (~20%) of the test split, within rounding.
    share = test_y.bincount() / (train_y.bincount() + test_y.bincount())
    assert torch.all((share - 0.2).abs() < 0.01)
    assert torch.equal(load_digits(train=False)[1], test_y)  # the same split every time


@needs_mnist
def test_mnist_loads_in_full():
    train_x, train_y = load_mnist(DATA_DIR, train=True, download=False)
    test_x, test_y = load_mnist(DATA_DIR, train=False, download=False)
    assert train_x.shape == (60000, 1, 28, 28) and test_x.shape == (10000, 1, 28, 28)
    assert train_x.dtype == torch.uint8 and train_y.dtype == torch.int64
    assert test_y.bincount().tolist() == MNIST_TEST_COUNTS


@needs_cifar10
def test_cifar10_subset_loads_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        train_x, train_y = load_cifar10(DATA_DIR, train=True, download=False)
        test_x, test_y = load_cifar10(DATA_DIR, train=False, download=False)
    assert train_x.shape == (4000, 3, 32, 32) and test_x.shape == (1000, 3, 32, 32)
    assert train_x.dtype == torch.uint8 and train_y.dtype == torch.int64
    assert test_y.bincount().tolist() == CIFAR10_SUBSET_TEST_COUNTS
    assert test_x[0, :, 0, 0].tolist() == [158, 112, 49]  # first pixel of test[0], R, G, B
    assert "SUBSET of 4000 images" in caplog.text and "SUBSET of 1000 images" in caplog.text


def digits(**kwargs) -> DigitsDataModule:
    augment = v2.RandomResizedCrop(8, scale=(0.5, 1.0))
    datamodule = DigitsDataModule(augment=augment, num_workers=0, **kwargs)
    datamodule.setup("fit")
    return datamodule


@pytest.mark.parametrize("n_views", [2, 3])
def test_train_batch_holds_n_augmented_views(n_views):
    torch.manual_seed(0)
    views, labels = next(iter(digits(n_views=n_views, batch_size=32).train_dataloader()))
    assert len(views) == n_views
    for view in views:
        assert view.shape == (32, 1, 8, 8) and view.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64
    assert not torch.equal(views[0], views[1])  # independent draws of the augmentation


def test_train_loader_drops_the_last_partial_batch():
    assert len(digits(batch_size=100).train_dataloader()) == 1437 // 100


def test_val_loaders_are_bank_then_queries_unaugmented():
    datamodule = digits(eval_batch_size=500)
    bank, queries = datamodule.val_dataloader()
    assert len(bank.dataset) == 1437 and len(queries.dataset) == 360
    batch = next(iter(queries))
    # uint8 to the device, normalised there (after the transfer, as Lightning calls it).
    assert batch.images.shape == (360, 1, 8, 8) and batch.images.dtype == torch.uint8
    images, labels = datamodule.on_after_batch_transfer(batch, 1)
    assert images.shape == (360, 1, 8, 8) and images.dtype == torch.float32
    # Not shuffled, not augmented: exactly the normalised test split in order.
    test_x, test_y = load_digits(train=False)
    assert torch.equal(labels, test_y)
    assert torch.allclose(images, (test_x / 255 - 0.5) / 0.5)


def test_eval_batches_normalised_on_the_device_equal_the_eval_transform():
    # What each validation computed before, image by image on the CPU: the eval transform.
    datamodule = digits(eval_batch_size=128, mean=(0.3,), std=(0.2,))
    bank, _ = datamodule.val_dataloader()
    batch = next(iter(bank))
    ours = datamodule.normalise(batch.images)
    theirs = torch.stack([datamodule.eval_transform(image) for image in batch.images])
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_batches_are_pinned_when_the_trainer_runs_on_cuda():
    from types import SimpleNamespace

    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    for accelerator, pinned in ((CPUAccelerator(), False), (CUDAAccelerator(), True)):
        datamodule = digits()
        datamodule.trainer = SimpleNamespace(accelerator=accelerator)
        loaders = [datamodule.train_dataloader(), *datamodule.val_dataloader()]
        assert [loader.pin_memory for loader in loaders] == [pinned] * 3
    datamodule = digits(pin_memory=False)
    datamodule.trainer = SimpleNamespace(accelerator=CUDAAccelerator())
    assert not datamodule.train_dataloader().pin_memory  # a given value wins


@pytest.mark.parametrize(
    "field,value", [("n_views", 1), ("batch_size", 1), ("num_workers", -1), ("n_views", 2.0)]
)
def test_invalid_values_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}={value} is invalid"):
        DigitsDataModule(**{field: value})


def test_mean_and_std_must_match():
    with pytest.raises(ValueError, match=r"^std=\[0.5\] is invalid"):
        DigitsDataModule(mean=(0.5, 0.5, 0.5), std=(0.5,))


@pytest.mark.parametrize("datamodule_cls", [MNISTDataModule, CIFAR10DataModule])
def test_missing_data_without_download_names_the_folder(datamodule_cls, tmp_path):
    datamodule = datamodule_cls(data_dir=tmp_path, download=False)
    with pytest.raises(DataNotFoundError) as error:
        datamodule.prepare_data()
    message = str(error.value)
    assert str(tmp_path) in message and "missing" in message
    assert "dataset.download=true" in message and "ORBITCL_DATA_DIR" in message
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_data_dir_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "data" / "MNIST" / "raw")):
        MNISTDataModule(data_dir="~/data", download=False).prepare_data()


# Port 9 (discard) on localhost refuses at once: a failed download without needing the network.
@pytest.mark.parametrize(
    "datamodule_cls,attribute,unreachable",
    [
        (MNISTDataModule, "mirrors", ["http://127.0.0.1:9/"]),
        (CIFAR10DataModule, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz"),
    ],
)
def test_failed_download_is_reported(datamodule_cls, attribute, unreachable, monkeypatch, tmp_path):
    torchvision_cls = {MNISTDataModule: MNIST, CIFAR10DataModule: CIFAR10}[datamodule_cls]
    monkeypatch.setattr(torchvision_cls, attribute, unreachable)
    with pytest.raises(DataNotFoundError, match="Downloading failed") as error:
        datamodule_cls(data_dir=tmp_path, download=True).prepare_data()
    assert error.value.__cause__ is not None  # raised `from` torchvision's error


@needs_cifar10
def test_truncated_cifar10_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(DATA_DIR / "cifar-10-batches-py", folder)
    batch = folder / "data_batch_1"
    batch.chmod(0o644)  # the shared copy is read-only
    batch.write_bytes(batch.read_bytes()[:100_000])
    # Read by its structure: truncated, it cannot be unpickled, and is named.
    with pytest.raises(DataNotFoundError, match="data_batch_1 is corrupt or truncated"):
        load_cifar10(tmp_path, train=True, download=False)


@pytest.mark.parametrize(
    "name",
    [
        "digits",
        pytest.param("mnist", marks=needs_mnist),
        pytest.param("cifar10", marks=needs_cifar10),
    ],
)
def test_dataset_config_instantiates_and_yields_a_batch(name, train_config):
    # A small batch: a full one of MNIST's or CIFAR-10's augmentations takes seconds on CPU.
    config = train_config(f"dataset={name}").dataset
    datamodule = instantiate(config, batch_size=16, num_workers=0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    if datamodule.pipeline == "batched":  # uint8 batches, augmented after the device transfer
        views, labels = datamodule.batch_views(batch.images, torch.Generator()), batch.labels
    else:
        views, labels = batch
    size = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[name]
    assert len(views) == 2 and views[0].shape == (16, *size) and labels.shape == (16,)
    assert datamodule.num_classes == 10
    # Normalised with the dataset's own statistics: roughly zero mean, unit spread.
    assert abs(views[0].mean()) < 0.5 and 0.5 < views[0].std() < 1.5

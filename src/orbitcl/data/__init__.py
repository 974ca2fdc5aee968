"""Data: image datasets served as n augmented views per image (see `datamodule.py`): in memory,
or decoded from an image folder per sample (`folders.py`)."""

from orbitcl.data.datamodule import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    MNISTDataModule,
    MultiViewDataModule,
    STL10DataModule,
)
from orbitcl.data.errors import DataNotFoundError
from orbitcl.data.folders import ImageFolderDataModule
from orbitcl.data.rotated import RotatedMNISTDataModule
from orbitcl.data.sources import (
    NO_LABEL,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_mnist,
    load_stl10,
)
from orbitcl.data.views import ImageDataset, MultiViewDataset, MultiViewTransform

__all__ = [
    "NO_LABEL",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DataNotFoundError",
    "DigitsDataModule",
    "ImageDataset",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MultiViewDataModule",
    "MultiViewDataset",
    "MultiViewTransform",
    "RotatedMNISTDataModule",
    "STL10DataModule",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_mnist",
    "load_stl10",
]

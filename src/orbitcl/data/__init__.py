"""Data: in-memory image datasets served as n augmented views per image (see `datamodule.py`)."""

from orbitcl.data.datamodule import (
    CIFAR10DataModule,
    DigitsDataModule,
    MNISTDataModule,
    MultiViewDataModule,
)
from orbitcl.data.errors import DataNotFoundError
from orbitcl.data.sources import load_cifar10, load_digits, load_mnist
from orbitcl.data.views import ImageDataset, MultiViewDataset, MultiViewTransform

__all__ = [
    "CIFAR10DataModule",
    "DataNotFoundError",
    "DigitsDataModule",
    "ImageDataset",
    "MNISTDataModule",
    "MultiViewDataModule",
    "MultiViewDataset",
    "MultiViewTransform",
    "load_cifar10",
    "load_digits",
    "load_mnist",
]

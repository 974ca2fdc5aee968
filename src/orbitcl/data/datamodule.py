"""LightningDataModules: n augmented views per image for training, and the kNN bank and queries
for validation, from splits held in memory as uint8 tensors."""

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from orbitcl.data.sources import (
    Split,
    ensure_cifar10,
    ensure_mnist,
    load_cifar10,
    load_digits,
    load_mnist,
)
from orbitcl.data.views import ImageDataset, MultiViewDataset


class MultiViewDataModule(L.LightningDataModule):
    """Training batches `(views: n_views x (B, C, H, W), labels (B,))`; validation loaders
    `[bank, queries]` (train split, test split) of `(images (B, C, H, W), labels (B,))`.

    `augment` acts on one uint8 (C, H, W) image (geometry and colour); this class appends the
    conversion to float and `Normalize(mean, std)`, which alone are the eval transform. Without
    `augment` all views are identical. Subclasses say where the data comes from: `num_classes`,
    `load_split(train)` and, for data on disk, `prepare_data()`, the only place that downloads
    (Lightning runs it in one process, `setup` in every one).
    """

    num_classes: int

    def __init__(
        self,
        data_dir: str | Path | None = None,
        download: bool = True,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        n_views: int = 2,
        num_workers: int = 2,
        augment: Callable | None = None,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.5,),
        pin_memory: bool = False,
    ):
        super().__init__()
        _require_int("batch_size", batch_size, 2)  # the rest of a batch are the negatives
        _require_int("eval_batch_size", eval_batch_size, 1)
        _require_int("n_views", n_views, 2)  # a positive pair needs two views
        _require_int("num_workers", num_workers, 0)
        if len(std) != len(mean) or min(std) <= 0:
            raise ValueError(
                f"std={list(std)} is invalid: must hold one positive value per entry of "
                f"mean={list(mean)}"
            )
        self.data_dir = None if data_dir is None else Path(data_dir).expanduser()
        self.download = download
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.n_views = n_views
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        # uint8 (C, H, W) -> float32 (C, H, W) in [0, 1] -> standardised per channel
        self.eval_transform = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        )
        self.train_transform = (
            self.eval_transform if augment is None else v2.Compose([augment, self.eval_transform])
        )
        self._train: Split | None = None
        self._test: Split | None = None

    def load_split(self, train: bool) -> Split:
        """The train or test split: images uint8 (N, C, H, W), labels int64 (N,)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:  # Lightning calls setup again for validate and test
            self._train = self.load_split(train=True)
            self._test = self.load_split(train=False)

    def train_dataloader(self) -> DataLoader:
        views = MultiViewDataset(*self._train, self.train_transform, self.n_views)
        # drop_last: every step contrasts a full batch, so the number of negatives never changes.
        return self._loader(views, self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> list[DataLoader]:
        """[bank, queries]: the train and the test split, normalised but not augmented."""
        return [
            self._loader(ImageDataset(*split, self.eval_transform), self.eval_batch_size)
            for split in (self._train, self._test)
        ]

    def test_dataloader(self) -> list[DataLoader]:
        """The same [bank, queries] as validation."""
        return self.val_dataloader()

    def _loader(
        self, dataset: Dataset, batch_size: int, shuffle: bool = False, drop_last: bool = False
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            # Training workers start afresh each epoch, so their random augmentations are seeded
            # from the epoch's seed (orbitcl.resume.EpochSeed) and a resumed run replays them
            # exactly; the deterministic eval loaders keep theirs and skip the start-up.
            persistent_workers=self.num_workers > 0 and not shuffle,
        )


class DigitsDataModule(MultiViewDataModule):
    """scikit-learn's 8x8 digits: bundled with scikit-learn, so `data_dir` and `download` are
    unused."""

    num_classes = 10

    def load_split(self, train: bool) -> Split:
        return load_digits(train)


class MNISTDataModule(MultiViewDataModule):
    """MNIST from `<data_dir>/MNIST/raw` (torchvision's layout)."""

    num_classes = 10

    def prepare_data(self) -> None:
        ensure_mnist(self.data_dir, self.download)

    def load_split(self, train: bool) -> Split:
        return load_mnist(self.data_dir, train, download=False)


class CIFAR10DataModule(MultiViewDataModule):
    """CIFAR-10 from `<data_dir>/cifar-10-batches-py`: the full dataset, else the offline subset."""

    num_classes = 10

    def prepare_data(self) -> None:
        ensure_cifar10(self.data_dir, self.download)

    def load_split(self, train: bool) -> Split:
        return load_cifar10(self.data_dir, train, download=False)


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: must be an integer >= {minimum}")

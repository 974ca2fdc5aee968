"""LightningDataModules: n augmented views per image for training, and the kNN bank and queries
for validation, from splits held in memory as uint8 tensors (image folders: `folders.py`)."""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from orbitcl.checks.numbers import require_int
from orbitcl.data.batched.augment import BatchAugment
from orbitcl.data.batches import (
    EvalBatch,
    EvalSplit,
    ImageBatch,
    NumberedLoader,
    TensorBatchDataset,
    keep_batch,
)
from orbitcl.data.imbalance import (
    check_counts_available,
    check_imbalance,
    long_tailed_counts,
    subsample_classes,
)
from orbitcl.data.sources import (
    STL10_SPLITS,
    Split,
    ensure_cifar10,
    ensure_cifar100,
    ensure_mnist,
    ensure_stl10,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_mnist,
    load_stl10,
)
from orbitcl.data.views import MultiViewDataset

log = logging.getLogger(__name__)


class MultiViewDataModule(L.LightningDataModule):
    """Training batches `(views: n_views x (B, C, H, W), labels (B,))`; validation loaders
    `[bank, queries]` (train split, test split) of `(images (B, C, H, W), labels (B,))`.

    `augment` acts on one uint8 (C, H, W) image (geometry and colour); this class appends the
    conversion to float and `Normalize(mean, std)`, which alone are the eval transform. Without
    `augment` all views are identical.

    `pipeline` says where training views are made. `per_sample`: by `augment` itself, one image
    at a time in DataLoader workers. `batched`: the loader serves uint8 batches from memory and
    `on_after_batch_transfer` augments the whole batch at once, on its device (the GPU when there
    is one), with `BatchAugment.from_torchvision(augment)`: the same augmentations as tensor ops.
    Its randomness comes from (`seed`, epoch, rank, batch index), so a resumed run replays it.
    The diagnostics' views (`train_transform`) are per-sample in both. The eval loaders serve
    uint8 batches (`EvalBatch`), normalised on their device after the transfer (`normalise`).
    `pin_memory` None pins the loaders' batches when the trainer runs on CUDA.

    Subclasses say where the data comes from: `num_classes`,
    `load_split(train)` and, for data on disk, `prepare_data()`, the only place that downloads
    (Lightning runs it in one process, `setup` in every one). The kNN bank is the train split
    unless `load_bank()` says otherwise (STL-10 trains on unlabeled images).

    Images without a class label are labelled `NO_LABEL` (-1); `missing_labels` says which, in
    the words of the argument responsible, and label-using losses refuse to train on them. Without
    any labels (`num_classes` 0) the validation loaders are [queries] alone: no kNN bank.
    Training labels may instead be continuous (`continuous_labels`, e.g. rotated MNIST's angles),
    for losses that take such labels (y-Aware); the bank and queries keep class labels.

    `imbalance_ratio` (r >= 1) or `class_counts` (one count per class) train on a class-imbalanced
    subset of the train split (`imbalance.py`: Cao et al.'s long-tailed profile, images chosen by
    `subset_seed`), which is then also the kNN bank; the test split stays whole.
    `train_class_counts()` gives the training images per class.
    """

    num_classes: int  # 0: no class labels at all
    # None if every training image has a class label; else why not, naming the argument
    # (e.g. "root='/data/x' is a flat folder of images, without class folders").
    missing_labels: str | None = None
    # None if the training labels are class indices; else what they are, naming the argument
    # (e.g. "label_space='circle' labels each training image with its rotation angle").
    continuous_labels: str | None = None

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
        pin_memory: bool | None = None,
        pipeline: str = "per_sample",
        seed: int = 0,
        imbalance_ratio: float = 1,
        class_counts: Sequence[int] | None = None,
        subset_seed: int = 0,
    ):
        super().__init__()
        require_int("batch_size", batch_size, 2)  # the rest of a batch are the negatives
        require_int("eval_batch_size", eval_batch_size, 1)
        require_int("n_views", n_views, 2)  # a positive pair needs two views
        require_int("num_workers", num_workers, 0)
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
        if pipeline not in ("batched", "per_sample"):
            raise ValueError(f"pipeline={pipeline!r} is invalid: must be 'batched' or 'per_sample'")
        self.pipeline = pipeline
        self.seed = seed
        self.requested_counts = check_imbalance(imbalance_ratio, class_counts)
        self.imbalance_ratio = imbalance_ratio
        self.subset_seed = subset_seed
        # Built now, so an augmentation the batched pipeline lacks fails before any data is read.
        self.batch_augment = (
            BatchAugment.from_torchvision(augment) if pipeline == "batched" else None
        )
        self._mean_std = torch.tensor([list(mean), list(std)]).view(
            2, 1, -1, 1, 1
        )  # (2, 1, C, 1, 1)
        self._train: Split | None = None
        self._test: Split | None = None
        self._bank: Split | None = None

    def load_split(self, train: bool) -> Split:
        """The train or test split: images uint8 (N, C, H, W), labels int64 (N,)."""
        raise NotImplementedError

    def offers(self) -> dict[str, str | None]:
        """What this data provides to the diagnostics, by the fields of
        `orbitcl.callbacks.requirements.DataNeeds`: None where it does, else why not, naming the
        dataset argument responsible (e.g. "root='/x' is a flat folder of images, ...")."""
        no_classes = None
        if not self.num_classes:
            no_classes = self.missing_labels or f"_target_={type(self).__name__} has no classes"
        return {
            "class_labels": no_classes,  # the test split and the kNN bank
            "training_class_labels": self.continuous_labels or no_classes,
            "test_split": None,  # every datamodule has one (an image folder holds one out)
        }

    def load_bank(self) -> Split:
        """The kNN bank, once the train split is loaded: the train split itself."""
        return self._train

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:  # Lightning calls setup again for validate and test
            self._train = self.imbalanced(self.load_split(train=True))
            self._test = self.load_split(train=False)
            self._bank = self.load_bank()

    @property
    def subsampled(self) -> bool:
        """Whether training runs on a class-imbalanced subset of the train split."""
        return self.imbalance_ratio != 1 or self.requested_counts is not None

    def imbalanced(self, split: Split) -> Split:
        """The train split, or the subset `imbalance_ratio` / `class_counts` ask for. Raises
        ValueError naming the argument if the split cannot give it."""
        if not self.subsampled:
            return split
        counted = self.requested_counts is not None
        field = "class_counts" if counted else "imbalance_ratio"
        value = self.requested_counts if counted else self.imbalance_ratio
        reason = self.missing_labels or self.continuous_labels
        if reason is not None:
            raise ValueError(
                f"{field}={value} is invalid: it needs the class of every training image, and "
                f"{reason}"
            )
        images, labels = split
        available = torch.bincount(labels, minlength=self.num_classes).tolist()
        if not counted:
            counts = long_tailed_counts(available, self.imbalance_ratio)
        else:
            counts = self.requested_counts
            check_counts_available(counts, available)
        keep = subsample_classes(labels, counts, self.subset_seed)
        if len(keep) < self.batch_size:  # drop_last: not one training step
            raise ValueError(
                f"{field}={value} is invalid: it keeps {len(keep)} training images, fewer than "
                f"one batch (batch_size={self.batch_size})"
            )
        log.info(
            "Training on a class-imbalanced subset (%s=%s, subset_seed=%d): %d of %d images, "
            "per class %s",
            field,
            value,
            self.subset_seed,
            len(keep),
            len(labels),
            counts,
        )
        return images[keep], labels[keep]

    @property
    def training_split(self) -> Split:
        """The training images and their labels (after any subsampling), once set up."""
        if self._train is None:
            raise RuntimeError("the datamodule is not set up: call setup() first")
        return self._train

    def train_class_counts(self) -> list[int] | None:
        """Training images per class (after any subsampling), once set up; None if the training
        images do not all carry a class label."""
        if self.missing_labels is not None or self.continuous_labels is not None:
            return None
        return torch.bincount(self.training_split[1], minlength=self.num_classes).tolist()

    def train_dataloader(self) -> DataLoader:
        if self.pipeline == "batched":
            # No workers: a batch is one indexing op; the augmentation runs after the transfer.
            return NumberedLoader(
                TensorBatchDataset(*self._train),
                self.batch_size,
                shuffle=True,
                drop_last=True,
                collate_fn=keep_batch,
                pin_memory=self._pinned(),
            )
        views = MultiViewDataset(*self._train, self.train_transform, self.n_views)
        # drop_last: every step contrasts a full batch, so the number of negatives never changes.
        return self._loader(views, self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> list[DataLoader]:
        """[bank, queries]: the bank (the train split) and the test split, not augmented;
        [queries] alone without class labels (nothing for the bank to vote with). Batches are
        uint8 `EvalBatch`es, normalised on their device by `on_after_batch_transfer` (outside
        Lightning: `normalise`). Splits in memory need no workers (a batch is one indexing op);
        image files are decoded by `num_workers` workers, a batch each."""
        splits = (self._bank, self._test) if self.num_classes else (self._test,)
        loaders = []
        for images, labels in splits:
            workers = 0 if isinstance(images, Tensor) else self.num_workers
            loaders.append(
                DataLoader(
                    EvalSplit(images, labels, self.eval_transform),
                    self.eval_batch_size,
                    collate_fn=keep_batch,
                    num_workers=workers,
                    pin_memory=self._pinned(),
                    persistent_workers=workers > 0,
                )
            )
        return loaders

    def test_dataloader(self) -> list[DataLoader]:
        """The same [bank, queries] as validation."""
        return self.val_dataloader()

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Batched pipeline: a uint8 `ImageBatch`, now on its device -> `(views, labels)`; an
        `EvalBatch` -> `(normalised images, labels)`."""
        if isinstance(batch, EvalBatch):
            return self.normalise(batch.images), batch.labels
        if not isinstance(batch, ImageBatch):  # per-sample views
            return batch
        trainer = self.trainer
        generator = self.batch_generator(trainer.current_epoch, trainer.global_rank, batch.index)
        return self.batch_views(batch.images, generator), batch.labels

    def batch_generator(self, epoch: int, rank: int, index: int) -> torch.Generator:
        """The CPU generator of batch `index` of `epoch` on `rank`: seeded from (seed, epoch,
        rank, index) alone, as `orbitcl.training.resume.EpochSeed` seeds the rest of an epoch."""
        entropy = [self.seed, epoch, rank, index]  # SeedSequence mixes them: no collisions
        return torch.Generator().manual_seed(
            int(np.random.SeedSequence(entropy).generate_state(1)[0])
        )

    def batch_views(self, images: Tensor, generator: torch.Generator) -> list[Tensor]:
        """`n_views` augmented, normalised views float (B, C, H, W) of images uint8 (B, C, H, W),
        computed on the images' device, all views in one pass."""
        views = self.augment_batch(images.repeat(self.n_views, 1, 1, 1), generator)  # (V*B, ...)
        return list(views.chunk(self.n_views))  # V x (B, C, H, W)

    def _pinned(self) -> bool:
        """`pin_memory`; None: whether the trainer runs on CUDA, where a batch copied from pinned
        memory does not block the host (and the copy can overlap the step before)."""
        if self.pin_memory is not None:
            return self.pin_memory
        trainer = getattr(self, "trainer", None)
        return trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)

    def normalise(self, images: Tensor) -> Tensor:
        """The eval transform of a batch, on its device: uint8 (B, C, H, W) -> float32, scaled to
        [0, 1] and standardised per channel (as `eval_transform` does image by image)."""
        views = images.to(torch.float32).div_(255)
        return views.sub_(self._mean_std_on(views.device)[0]).div_(self._mean_std[1])

    def _mean_std_on(self, device: torch.device) -> Tensor:
        if self._mean_std.device != device:  # moved once, not at every step
            self._mean_std = self._mean_std.to(device)
        return self._mean_std

    def augment_batch(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """One augmented, normalised view float (B, C, H, W) of each of images uint8 (B, C, H, W)
        by the batched pipeline (which must be this datamodule's), drawn from `generator`."""
        views = self.batch_augment(images, generator)
        mean, std = self._mean_std_on(views.device)
        return views.sub_(mean).div_(std)

    def _loader(
        self, dataset: Dataset, batch_size: int, shuffle: bool = False, drop_last: bool = False
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self._pinned(),
            # Training workers start afresh each epoch, so their random augmentations are seeded
            # from the epoch's seed (orbitcl.training.resume.EpochSeed) and a resumed run replays
            # them exactly; the deterministic eval loaders keep theirs and skip the start-up.
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


class CIFAR100DataModule(MultiViewDataModule):
    """CIFAR-100 from `<data_dir>/cifar-100-python`, labelled with its 100 fine classes."""

    num_classes = 100

    def prepare_data(self) -> None:
        ensure_cifar100(self.data_dir, self.download)

    def load_split(self, train: bool) -> Split:
        return load_cifar100(self.data_dir, train, download=False)


class STL10DataModule(MultiViewDataModule):
    """STL-10 from `<data_dir>/stl10_binary`, 3x96x96: training on `train_split` (by default the
    100k unlabeled images; "train+unlabeled" adds the 5k labelled ones, "train" is those alone),
    the kNN bank on the 5k labelled train images, the queries on the 8k test images."""

    num_classes = 10

    def __init__(self, train_split: str = "unlabeled", **kwargs):
        super().__init__(**kwargs)
        if train_split not in STL10_SPLITS or train_split == "test":
            raise ValueError(
                f"train_split={train_split!r} is invalid: must be 'unlabeled', "
                "'train+unlabeled' or 'train'"
            )
        self.train_split = train_split
        if train_split != "train":
            self.missing_labels = f"train_split={train_split!r} holds STL-10's unlabeled images"

    def prepare_data(self) -> None:
        ensure_stl10(self.data_dir, self.download)

    def load_split(self, train: bool) -> Split:
        return load_stl10(self.data_dir, self.train_split if train else "test", download=False)

    def offers(self) -> dict[str, str | None]:
        offers = super().offers()
        if self.train_split == "unlabeled":  # train+unlabeled: the 5k labelled ones are classes
            offers["training_class_labels"] = self.missing_labels
        return offers

    def load_bank(self) -> Split:
        if self.train_split == "train":
            return self._train
        return load_stl10(self.data_dir, "train", download=False)

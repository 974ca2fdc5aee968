"""Whole uint8 batches from images held in memory, for augmentation after transfer (the batched
pipeline): the loader only indexes a tensor; the datamodule augments the batch on its device."""

from typing import NamedTuple

from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class ImageBatch(NamedTuple):
    """A training batch before augmentation: its position `index` in the epoch seeds it."""

    images: Tensor  # uint8 (B, C, H, W)
    labels: Tensor  # int64 (B,)
    index: int


class EvalBatch(NamedTuple):
    """A validation batch before normalisation: uint8 images, normalised on their device
    (`MultiViewDataModule.normalise`)."""

    images: Tensor  # uint8 (B, C, H, W)
    labels: Tensor  # int64 (B,)


class TensorBatchDataset(Dataset):
    """Images uint8 (N, C, H, W) and labels (N,); fetches a batch with one indexing op."""

    def __init__(self, images: Tensor, labels: Tensor):
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        # The DataLoader hands the whole batch's indices here (see `keep_batch`), not one by one.
        return self.images[indices], self.labels[indices]


class EvalSplit(TensorBatchDataset):
    """A validation split, images uint8 (N, C, H, W) and labels (N,), served as `EvalBatch`es
    of uint8 images (a quarter of float32's bytes to copy), normalised on the device. `transform`
    (the eval transform) serves those that take single items: `split[i]` is
    `(transform(image), label)`, as an image dataset's. The diagnostics' fixed images are taken
    from `images` as they are, uint8, and normalised on the device too (`metrics.orbits`)."""

    def __init__(self, images: Tensor, labels: Tensor, transform):
        super().__init__(images, labels)
        self.transform = transform

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.images[index]), self.labels[index]

    def __getitems__(self, indices: list[int]) -> EvalBatch:
        return EvalBatch(self.images[indices], self.labels[indices])


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """collate_fn for `TensorBatchDataset`: its batches arrive collated."""
    return batch


class NumberedLoader(DataLoader):
    """A DataLoader (over `TensorBatchDataset`, `collate_fn=keep_batch`) whose batches are
    `ImageBatch`es numbered 0, 1, ... in each epoch."""

    def __iter__(self):
        for index, (images, labels) in enumerate(super().__iter__()):
            yield ImageBatch(images, labels, index)

"""Datasets over in-memory uint8 images, and the transform that turns one image into n views."""

from collections.abc import Callable

from torch import Tensor
from torch.utils.data import Dataset

Transform = Callable[[Tensor], Tensor]


class MultiViewTransform:
    """`n_views` independent draws of `transform` on one image: the positives of contrastive
    learning (SimCLR's pair, generalised to n views)."""

    def __init__(self, transform: Transform, n_views: int):
        self.transform = transform
        self.n_views = n_views

    def __call__(self, image: Tensor) -> list[Tensor]:
        return [self.transform(image) for _ in range(self.n_views)]


class ImageDataset(Dataset):
    """`(transform(image), label)` items from images uint8 (N, C, H, W) and labels int64 (N,).

    With the datamodule's eval transform, items are `(image float (C, H, W), label)`: the kNN bank
    and queries.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable):
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


class MultiViewDataset(ImageDataset):
    """`(views, label)` items: `n_views` independently augmented float (C, H, W) views of one image.

    The default collate turns a batch of them into `(views: n_views x (B, C, H, W), labels (B,))`.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: Transform, n_views: int):
        super().__init__(images, labels, MultiViewTransform(transform, n_views))

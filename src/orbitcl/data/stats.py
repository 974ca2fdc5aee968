"""Statistics of a split's images. Per-channel mean and std of a folder's training images, for
`dataset.mean` and `dataset.std`: `python -m orbitcl.data.stats DIR --image-size 64 --channels 3`
prints the overrides. The images are read as training reads them (`orbitcl.data.folders`:
converted to the channels, resized and centre-cropped, the held-out split left out), pixels in
[0, 1]. And the cosines between the classes' mean images, X-CLR's default class similarity.
"""

import argparse
import sys
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from orbitcl.data.errors import DataNotFoundError
from orbitcl.data.folders import ImageFolderDataModule
from orbitcl.data.views import ImageDataset


def channel_statistics(
    images: Sequence[Tensor], batch_size: int = 256, num_workers: int = 0
) -> tuple[list[float], list[float]]:
    """(mean, std) of each channel over every pixel of `images` (uint8 (C, H, W) each, e.g. an
    `ImageFiles` or a tensor (N, C, H, W)), in [0, 1]; accumulated in float64."""
    labels = torch.zeros(len(images), dtype=torch.int64)
    dataset = ImageDataset(images, labels, v2.ToDtype(torch.float32, scale=True))
    total, squares, count = 0.0, 0.0, 0
    for batch, _ in DataLoader(dataset, batch_size, num_workers=num_workers):
        pixels = batch.double().transpose(0, 1).flatten(1)  # (B, C, H, W) -> (C, B*H*W)
        total = total + pixels.sum(1)
        squares = squares + pixels.square().sum(1)
        count += pixels.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def class_mean_cosines(
    images: Sequence[Tensor], labels: Tensor, num_classes: int, chunk: int = 4096
) -> Tensor:
    """(C, C) float64: the cosine between the mean images of every two classes, on raw pixels
    (geometry.md, X-CLR's offline class similarity). `images` uint8 (N, C, H, W) (a tensor or an
    `ImageFiles`), `labels` (N,) in [0, num_classes); read `chunk` images at a time."""
    sums = torch.zeros(num_classes, images[0].numel(), dtype=torch.float64)  # (classes, C*H*W)
    for start in range(0, len(labels), chunk):
        index = torch.arange(start, min(start + chunk, len(labels)))
        sums.index_add_(0, labels[index], images[index].flatten(1).double())
    counts = torch.bincount(labels, minlength=num_classes)
    if (empty := (counts == 0).nonzero().flatten()).numel():
        raise ValueError(f"class {int(empty[0])} has no training image: it has no mean image")
    means = F.normalize(sums, dim=1)  # the count divides out of a cosine
    return means @ means.T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orbitcl.data.stats", description=__doc__)
    parser.add_argument("root", help="the image folder (dataset.root)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        folder = ImageFolderDataModule(
            args.root,
            args.image_size,
            args.channels,
            args.test_fraction,
            args.split_seed,
            mean=[0.5] * args.channels,
            std=[0.5] * args.channels,
        )
        images, _ = folder.load_split(train=True)
        mean, std = channel_statistics(images, num_workers=args.num_workers)
    except (ValueError, DataNotFoundError) as err:
        print(f"orbitcl.data.stats: error: {err}", file=sys.stderr)
        return 2
    print(
        f"{len(images)} training images of {folder.root}, {args.channels} channels at "
        f"{args.image_size}x{args.image_size}:"
    )
    print(f"dataset.mean=[{','.join(f'{m:.4f}' for m in mean)}]", end=" ")
    print(f"dataset.std=[{','.join(f'{s:.4f}' for s in std)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

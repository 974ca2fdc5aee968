"""Your own images: a folder in torchvision's ImageFolder layout (labels from class folders) or a
flat folder of images (no labels), read one image at a time in the DataLoader workers.

    root/<class>/.../<image>                      labelled by class folder (sorted names: 0, 1, ...)
    root/<image>                                  flat: every image labelled NO_LABEL (-1)
    root/train/... with root/test/... (or val/)   the same, with the test split given

Without a test (or val) folder, a held-out split is carved from the images: per class, a
`test_fraction` of them chosen by a permutation seeded with `split_seed`, so the same files always
give the same split. Files count as images by their extension (torchvision's `IMG_EXTENSIONS`);
folders whose name starts with "." are skipped. Each image is decoded, converted to `channels`,
resized (shorter side) and centre-cropped to `image_size` when it is read.

What is checked, naming the path: when listed (before training), a symbolic link to a folder it
is inside (a loop), a broken link, an empty (zero-byte) file and a class folder without images;
when decoded (in the DataLoader worker: decoding every image first would cost a pass over the
data), a file that is truncated, not an image, or larger than PIL's `Image.MAX_IMAGE_PIXELS`
allows (a decompression bomb). Either stops the run. Conversion to `channels`: palette, CMYK and
grey images are converted by PIL; an alpha channel is dropped, as torchvision's loader does;
16-bit grey images are scaled to 8 bits (PIL would clip them at 255).
"""

import logging
import os
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.v2 import functional as F

from orbitcl.checks.numbers import require_int
from orbitcl.data.datamodule import MultiViewDataModule
from orbitcl.data.errors import DataNotFoundError
from orbitcl.data.sources import NO_LABEL, Split

log = logging.getLogger(__name__)

Items = list[tuple[str, int]]  # (path, label) of each image
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grey (PIL opens PNGs as "I")


class ImageFiles:
    """Images read from files when indexed: `files[i]` is image i, uint8 (C, S, S); indexing with
    several indices (a tensor or list) gives them stacked, (n, C, S, S). Only paths are held, so
    DataLoader workers receive it cheaply and do the decoding."""

    def __init__(self, paths: Sequence[str], size: int, channels: int):
        self.paths = list(paths)
        self.size = size
        self.mode = {1: "L", 3: "RGB"}[channels]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> Tensor:
        if isinstance(index, Integral) or (isinstance(index, Tensor) and index.ndim == 0):
            return self.read(self.paths[int(index)])
        return torch.stack([self.read(self.paths[int(i)]) for i in index])

    def read(self, path: str) -> Tensor:
        try:
            with Image.open(path) as image:
                image = to_mode(image, self.mode)  # decodes the whole file
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise DataNotFoundError(
                f"{path} cannot be read as an image ({err.__class__.__name__}: {err}); "
                "delete or replace it"
            ) from err
        image = F.center_crop(F.resize(image, [self.size]), [self.size])  # shorter side first
        return F.pil_to_tensor(image)  # (C, S, S) uint8


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode` ("L" or "RGB"), 8 bits per channel: 16-bit grey scaled (x / 257),
    the rest converted by PIL (alpha dropped)."""
    if image.mode in _WIDE_GREY:
        wide = np.asarray(image, dtype=np.int64).clip(0, 65535)  # (H, W)
        image = Image.fromarray(((wide + 128) // 257).astype(np.uint8), mode="L")
    return image.convert(mode)


class ImageFolderDataModule(MultiViewDataModule):
    """A folder of images (layouts: this module's docstring) as n augmented views per image, made
    per sample in the DataLoader workers (`pipeline` must be `per_sample`: the images are not in
    memory). With class folders the kNN monitor, the online linear classifier and label-using
    losses have labels; a flat folder has none (`missing_labels`), and only training and the
    label-free diagnostics run.

    `root` is checked and its layout read when built (a directory listing); the images are
    listed in `prepare_data` and `setup`, and decoded when read.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        image_size: int = 64,
        channels: int = 3,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        **kwargs,
    ):
        if kwargs.get("pipeline", "per_sample") != "per_sample":
            raise ValueError(
                f"pipeline={kwargs['pipeline']!r} is invalid: an image folder is decoded one "
                "image at a time in the DataLoader workers, so its views are made there too; "
                "use 'per_sample'"
            )
        require_int("image_size", image_size, 1)
        if channels not in (1, 3):
            raise ValueError(f"channels={channels!r} is invalid: must be 1 (grey) or 3 (RGB)")
        mean = kwargs.get("mean", (0.5,))
        if len(mean) != channels:
            raise ValueError(
                f"mean={list(mean)} is invalid: must hold one value per channel "
                f"(channels={channels}); python -m orbitcl.data.stats ROOT computes them"
            )
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction={test_fraction} is invalid: must be in (0, 1)")
        super().__init__(**kwargs)
        if self.subsampled:  # a subset would be indexed, i.e. decoded, all at once
            raise ValueError(
                f"imbalance_ratio={self.imbalance_ratio} and class_counts={self.requested_counts} "
                "are invalid for an image folder: must be 1 and null (class-imbalanced subsets "
                "are drawn from in-memory datasets: mnist, cifar10, ...)"
            )
        if root is None or not Path(root).expanduser().is_dir():
            raise ValueError(
                f"root={None if root is None else str(root)!r} is invalid: must be a directory "
                "of images, or of class folders of images"
            )
        self.root = Path(root).expanduser()
        self.image_size = image_size
        self.channels = channels
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.train_dir, self.test_dir = split_folders(self.root)
        self.classes = class_folders(self.train_dir)
        self.num_classes = len(self.classes)
        if not self.classes:
            self.missing_labels = (
                f"root={str(self.root)!r} is a flat folder of images, without class folders"
            )
        self._items: tuple[Items, Items] | None = None

    def prepare_data(self) -> None:
        # An empty or unusable folder fails here, before anything is written.
        train, _ = self.items()
        if len(train) < self.batch_size:  # drop_last: not one training step
            raise DataNotFoundError(
                f"{len(train)} training images in {self.train_dir}, fewer than one batch "
                f"(dataset.batch_size={self.batch_size}): lower it or add images"
            )

    def load_split(self, train: bool) -> Split:
        paths, labels = zip(*self.items()[0 if train else 1], strict=True)
        files = ImageFiles(paths, self.image_size, self.channels)
        return files, torch.tensor(labels, dtype=torch.int64)

    def items(self) -> tuple[Items, Items]:
        """(train, test) lists of (path, label), listed once."""
        if self._items is None:
            train = list_images(self.train_dir, self.classes)
            if self.test_dir is not None:
                test = list_images(self.test_dir, self.classes)
            else:
                held = held_out([label for _, label in train], self.test_fraction, self.split_seed)
                test = [item for item, out in zip(train, held, strict=True) if out]
                train = [item for item, out in zip(train, held, strict=True) if not out]
            if not test:
                raise DataNotFoundError(
                    f"no test images: {self.test_dir or self.root} has too few images to hold "
                    "some out (at least 2 per class)"
                )
            self._items = train, test
        return self._items


def split_folders(root: Path) -> tuple[Path, Path | None]:
    """(train folder, test folder or None): root/train with root/test or root/val, else root."""
    test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if (root / "train").is_dir() and test is not None:
        return root / "train", test
    return root, None


def class_folders(folder: Path) -> list[str]:
    """The sorted names of the folders in `folder` (not hidden ones): its classes."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def image_files(folder: Path, recursive: bool, inside: Path | None = None) -> list[str]:
    """The image files in `folder` (and, `recursive`, the folders below it, symbolic links
    followed, hidden folders skipped), sorted by (folder, name) as torchvision sorts them.
    Raises DataNotFoundError naming a link that loops (to `folder`, a folder between, or the
    folder `inside` which `folder` lies), a broken link or an empty file."""
    found: list[tuple[str, str]] = []

    def visit(directory: Path, inside: frozenset[str]) -> None:
        for entry in os.scandir(directory):
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:  # a loop of links: named below, if it has an image's name
                is_dir = False
            if is_dir:
                real = os.path.realpath(path)
                if real in inside:
                    raise DataNotFoundError(
                        f"{path} is a symbolic link to {real}, a folder it is inside: the tree "
                        "would loop forever. Remove the link."
                    )
                if recursive and not entry.name.startswith("."):
                    visit(path, inside | {real})
            elif _is_image(path):
                try:
                    size = entry.stat().st_size  # follows symbolic links
                except OSError as err:  # broken, or a loop of file links
                    raise DataNotFoundError(
                        f"{path} is a symbolic link that leads to no file ({err.strerror}): "
                        "remove it or point it at an image"
                    ) from err
                if size == 0:
                    raise DataNotFoundError(f"{path} is empty (0 bytes): delete or replace it")
                found.append((str(directory), entry.name))

    above = {os.path.realpath(folder)} | ({os.path.realpath(inside)} if inside else set())
    visit(folder, frozenset(above))
    return [os.path.join(directory, name) for directory, name in sorted(found)]


def list_images(folder: Path, classes: list[str]) -> Items:
    """(path, label) of every image in `folder`: in the folders of `classes` (label: the class's
    position), or with no `classes` directly in `folder` (label: NO_LABEL); sorted by path."""
    loose = image_files(folder, recursive=False)
    if not classes:
        if not loose:
            raise DataNotFoundError(
                f"no images in {folder}: expected image files ({', '.join(IMG_EXTENSIONS)}) or "
                "class folders of them"
            )
        return [(path, NO_LABEL) for path in loose]
    present = class_folders(folder)
    if unknown := sorted(set(present) - set(classes)):
        raise DataNotFoundError(
            f"{folder} has class folders that the training images do not: {', '.join(unknown)}"
        )
    if loose:
        log.warning("%d images in %s outside any class folder are left out", len(loose), folder)
    items = []
    for name in present:
        paths = image_files(folder / name, recursive=True, inside=folder)
        if not paths:
            raise DataNotFoundError(
                f"{folder / name} is a class folder without images ({', '.join(IMG_EXTENSIONS)}):"
                " add images, or remove it"
            )
        items += [(path, classes.index(name)) for path in paths]
    return items


def held_out(labels: list[int], fraction: float, seed: int) -> list[bool]:
    """Which images form the held-out split: in each class (one group for unlabelled images),
    `round(fraction * n)` of its n images, at least one and never all when n >= 2, chosen by a
    permutation seeded with `seed` over the images in the order given."""
    generator = torch.Generator().manual_seed(seed)
    labels_t = torch.tensor(labels)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for label in sorted(set(labels)):
        members = (labels_t == label).nonzero().flatten()
        n = len(members)
        count = min(n - 1, max(1, round(fraction * n)))
        held[members[torch.randperm(n, generator=generator)[:count]]] = True
    return held.tolist()


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS

"""Where the images come from: each `load_*` returns one split in memory as
`(images uint8 (N, C, H, W), labels int64 (N,))`; an image without a label (STL-10's unlabeled
split) has label `NO_LABEL`.

MNIST, CIFAR-10, CIFAR-100 and STL-10 go through torchvision, which owns the file formats and the
download. This file only checks the files first, so that a truncated file is named rather than
half-read, picks the offline CIFAR-10 subset when the full dataset is absent, and turns every
"not there" into a `DataNotFoundError` that says what to do about it. MNIST and CIFAR-10 are
checked by md5; CIFAR-100 and STL-10 by their structure (sizes, unpickling), which costs no pass
over STL-10's 2.6 GB and also reads a subset of them (with a warning), like the small files the
tests write.
"""

import logging
import pickle
from pathlib import Path

import numpy as np
import sklearn.datasets
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, STL10
from torchvision.datasets.utils import calculate_md5

from orbitcl.data.errors import DataNotFoundError

log = logging.getLogger(__name__)

Split = tuple[Tensor, Tensor]  # images uint8 (N, C, H, W), labels int64 (N,)
NO_LABEL = -1  # the label of an image that has none (torchvision's, for STL-10's unlabeled split)

# The uncompressed files torchvision reads, with their published md5s. torchvision itself only
# checks that they exist; checking the md5 too turns a truncated file into a clear message.
_MNIST_FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class CIFAR10Subset(CIFAR10):
    """The CIFAR-10 subset of the offline data copy: the first 4000 train and 1000 test images,
    in their original order, as re-packed batches (torchvision's md5s for the full files fail)."""

    train_list = [["data_batch_1", "327c98428ca3c4040c396c7b5ede0d7b"]]
    test_list = [["test_batch", "4f349ffc127980c8746238878b5cfeac"]]


def load_digits(train: bool) -> Split:
    """scikit-learn's 8x8 digits (bundled, no download): 1437 train / 360 test, 1x8x8.

    The split is stratified with a fixed seed, so every run sees the same, class-balanced split.
    """
    digits = sklearn.datasets.load_digits()
    images = np.rint(digits.images * 255 / 16).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    train_images, test_images, train_labels, test_labels = train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    images, labels = (train_images, train_labels) if train else (test_images, test_labels)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()


def ensure_mnist(data_dir: str | Path, download: bool) -> None:
    """Makes sure `<data_dir>/MNIST/raw` holds intact MNIST files, downloading them if allowed."""
    root = _root(data_dir, "MNIST")
    folder = root / "MNIST" / "raw"
    error = None
    if (problems := _problems(folder, _MNIST_FILES)) and download:
        try:  # also extracts *.gz archives already in the folder, without the network
            MNIST(root, download=True)
        except (OSError, RuntimeError) as err:
            error = err
        problems = _problems(folder, _MNIST_FILES)
    if problems:
        raise _not_found("MNIST", root, folder, [_MNIST_FILES], error) from error


def load_mnist(data_dir: str | Path, train: bool, download: bool) -> Split:
    """MNIST: 60000 train / 10000 test, 1x28x28."""
    ensure_mnist(data_dir, download)
    mnist = MNIST(_root(data_dir, "MNIST"), train=train)
    return mnist.data.unsqueeze(1), mnist.targets  # (N, 28, 28) -> (N, 1, 28, 28)


def ensure_cifar10(data_dir: str | Path, download: bool) -> type[CIFAR10]:
    """Makes sure `<data_dir>/cifar-10-batches-py` holds CIFAR-10, downloading it if allowed, and
    returns the class that reads what is there: the full dataset, else the offline subset."""
    root = _root(data_dir, "CIFAR-10")
    folder = root / CIFAR10.base_folder
    error = None
    if (cifar10 := _readable_cifar10(folder)) is None and download:
        try:
            CIFAR10(root, download=True)
        except (OSError, RuntimeError) as err:
            error = err
        cifar10 = _readable_cifar10(folder)
    if cifar10 is None:
        # Files are reported against the full dataset, accepting the subset's version too.
        versions = [_cifar10_files(CIFAR10), _cifar10_files(CIFAR10Subset)]
        raise _not_found("CIFAR-10", root, folder, versions, error) from error
    return cifar10


def load_cifar10(data_dir: str | Path, train: bool, download: bool) -> Split:
    """CIFAR-10: 50000 train / 10000 test (or the 4000 / 1000 offline subset), 3x32x32."""
    dataset_cls = ensure_cifar10(data_dir, download)
    cifar10 = dataset_cls(_root(data_dir, "CIFAR-10"), train=train)
    images = torch.from_numpy(cifar10.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    if dataset_cls is CIFAR10Subset:
        log.warning(
            "CIFAR-10 %s split: using the offline SUBSET of %d images (full split: %d), "
            "so results are not comparable with the full dataset",
            "train" if train else "test",
            len(images),
            50000 if train else 10000,
        )
    return images, torch.tensor(cifar10.targets, dtype=torch.int64)


class _CIFAR100Files(CIFAR100):
    """CIFAR-100 as torchvision reads it, without its md5 checks (`md5` None: the file exists)."""

    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = {**CIFAR100.meta, "md5": None}


class _STL10Files(STL10):
    """STL-10 as torchvision reads it, without its md5 checks (`md5` None: the file exists)."""

    train_list = [[name, None] for name, _ in STL10.train_list]
    test_list = [[name, None] for name, _ in STL10.test_list]


CIFAR100_FILES = [name for name, _ in [*_CIFAR100Files.train_list, *_CIFAR100Files.test_list]]
CIFAR100_FILES.append(CIFAR100.meta["filename"])
STL10_FILES = [name for name, _ in [*STL10.train_list, *STL10.test_list]]
STL10_SPLITS = {"train": 5000, "test": 8000, "unlabeled": 100000, "train+unlabeled": 105000}
_STL10_IMAGE_BYTES = 3 * 96 * 96


def ensure_cifar100(data_dir: str | Path, download: bool) -> None:
    """Makes sure `<data_dir>/cifar-100-python` holds CIFAR-100's files, downloading them if
    allowed."""
    _ensure_present("CIFAR-100", data_dir, CIFAR100, CIFAR100_FILES, download, CIFAR100.url)


def load_cifar100(data_dir: str | Path, train: bool, download: bool) -> Split:
    """CIFAR-100: 50000 train / 10000 test, 3x32x32, the 100 fine classes."""
    ensure_cifar100(data_dir, download)
    split = "train" if train else "test"
    folder = _root(data_dir, "CIFAR-100") / CIFAR100.base_folder
    try:
        cifar100 = _CIFAR100Files(folder.parent, train=train)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
        raise DataNotFoundError(
            f"CIFAR-100's {split} split cannot be read from {folder}: {split} or meta is corrupt "
            f"or truncated ({err.__class__.__name__}: {err}). Delete them and download again "
            "(dataset.download=true), or copy intact files there."
        ) from err
    images = torch.from_numpy(cifar100.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    _warn_if_partial("CIFAR-100", split, len(images), 50000 if train else 10000)
    return images, torch.tensor(cifar100.targets, dtype=torch.int64)


def ensure_stl10(data_dir: str | Path, download: bool) -> None:
    """Makes sure `<data_dir>/stl10_binary` holds STL-10's files, downloading them (2.6 GB) if
    allowed."""
    _ensure_present("STL-10", data_dir, STL10, STL10_FILES, download, STL10.url)


def load_stl10(data_dir: str | Path, split: str, download: bool) -> Split:
    """STL-10's `split`, 3x96x96: "train" (5000 labelled), "test" (8000 labelled), "unlabeled"
    (100000, labels NO_LABEL) or "train+unlabeled" (both, in that order)."""
    if split not in STL10_SPLITS:
        raise ValueError(f"split={split!r} is invalid: must be one of {', '.join(STL10_SPLITS)}")
    ensure_stl10(data_dir, download)
    folder = _root(data_dir, "STL-10") / STL10.base_folder
    for part in split.split("+"):
        _check_stl10_sizes(folder, part)
    stl10 = _STL10Files(folder.parent, split=split)
    images = torch.from_numpy(stl10.data)  # (N, 3, 96, 96): torchvision's transposed view
    _warn_if_partial("STL-10", split, len(images), STL10_SPLITS[split])
    return images, torch.from_numpy(stl10.labels.astype(np.int64))  # unlabeled: NO_LABEL


def _check_stl10_sizes(folder: Path, part: str) -> None:
    """Raises DataNotFoundError if a file of `part` ("train", "test", "unlabeled") cannot hold
    whole 3x96x96 images, or one label per image."""
    images = folder / f"{part}_X.bin"
    size = images.stat().st_size
    count, remainder = divmod(size, _STL10_IMAGE_BYTES)
    labels = folder / f"{part}_y.bin"
    if remainder or not count:
        what = f"{size} bytes, not a positive multiple of {_STL10_IMAGE_BYTES} (3x96x96)"
        problem = f"{images.name}: corrupt or truncated ({what})"
    elif part != "unlabeled" and labels.stat().st_size != count:
        problem = f"{labels.name}: corrupt or truncated ({labels.stat().st_size} labels for "
        problem += f"{count} images)"
    else:
        return
    raise DataNotFoundError(
        f"STL-10 data in {folder} is corrupt: {problem}. Delete it and download again "
        "(dataset.download=true), or copy intact files there."
    )


def _ensure_present(
    dataset: str,
    data_dir: str | Path,
    torchvision_cls: type,
    files: list[str],
    download: bool,
    archive: str,
) -> None:
    """Makes sure `files` exist in `<data_dir>/<torchvision_cls.base_folder>`, downloading them
    with torchvision if allowed; else raises DataNotFoundError naming what is missing."""
    root = _root(data_dir, dataset)
    folder = root / torchvision_cls.base_folder
    expected = dict.fromkeys(files)  # name -> no md5: checked for existence only
    error = None
    if _problems(folder, expected) and download:
        try:
            # STL-10's split "test" loads only its 2 smaller files once downloaded.
            extra = {"split": "test"} if torchvision_cls is STL10 else {}
            torchvision_cls(root, download=True, **extra)
        except (OSError, RuntimeError) as err:
            error = err
    if _problems(folder, expected):
        raise _not_found(dataset, root, folder, [expected], error, archive) from error


def _warn_if_partial(dataset: str, split: str, count: int, published: int) -> None:
    if count != published:
        log.warning(
            "%s %s split: %d images, not the published %d, so results are not comparable with "
            "the full dataset",
            dataset,
            split,
            count,
            published,
        )


def _root(data_dir: str | Path | None, dataset: str) -> Path:
    if data_dir is None:
        raise ValueError(f"data_dir=None is invalid: {dataset} needs a folder to read its files")
    return Path(data_dir).expanduser()


def _cifar10_files(cifar10: type[CIFAR10]) -> dict[str, str]:
    """File name -> md5 of everything `cifar10` reads, metadata included."""
    meta = (cifar10.meta["filename"], cifar10.meta["md5"])
    return dict([*cifar10.train_list, *cifar10.test_list, meta])


def _readable_cifar10(folder: Path) -> type[CIFAR10] | None:
    """The full dataset if it is intact in `folder`, else the subset if that is, else None."""
    intact = (c for c in (CIFAR10, CIFAR10Subset) if not _problems(folder, _cifar10_files(c)))
    return next(intact, None)


def _problems(folder: Path, *versions: dict[str, str | None]) -> dict[str, str]:
    """File name -> what is wrong with it, for each file of `versions` (name -> md5, None for any
    content) that is missing from `folder` or matches the md5 of no version; empty if all are
    intact."""
    accepted: dict[str, set[str | None]] = {}
    for files in versions:
        for name, md5 in files.items():
            accepted.setdefault(name, set()).add(md5)
    problems = {}
    for name, md5s in accepted.items():
        path = folder / name
        if not path.is_file():
            problems[name] = "missing"
        elif None not in md5s and calculate_md5(path) not in md5s:  # None: any content
            problems[name] = "corrupt or truncated (md5 mismatch)"
    return problems


def _not_found(
    dataset: str,
    root: Path,
    folder: Path,
    versions: list[dict[str, str | None]],
    error: Exception | None,
    archive: str | None = None,
) -> DataNotFoundError:
    problems = _problems(folder, *versions)
    expected = dict.fromkeys(name for files in versions for name in files)  # ordered, no repeats
    download = (
        f"Downloading failed: {str(error).strip()}"
        if error is not None
        else "Nothing was downloaded (dataset.download=false)."
    )
    return DataNotFoundError(
        f"{dataset} data is missing or corrupt in {folder}:\n"
        + "".join(f"  {name}: {problems.get(name, 'ok')}\n" for name in expected)
        + f"{download}\n"
        "To provide the files: set dataset.download=true when online; or copy them into that "
        "folder (delete corrupt ones first); or point dataset.data_dir=... (or the "
        f"ORBITCL_DATA_DIR environment variable) at a folder holding "
        f"{folder.relative_to(root)}/<files>."
        + (f" The files come in {archive}, extracted into the data folder." if archive else "")
    )

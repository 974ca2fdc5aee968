"""Where the images come from: each `load_*` returns one split in memory as
`(images uint8 (N, C, H, W), labels int64 (N,))`; an image without a label (STL-10's unlabeled
split) has label `NO_LABEL`.

MNIST and STL-10 go through torchvision, which owns those file formats; CIFAR-10 and CIFAR-100,
pickles, are read here (`cifar_files.py`) through the restricted unpickler, so that no dataset
file can run code (torchvision would `pickle.load` them). torchvision downloads all four. This
file checks the files first, so that a truncated file is named rather than half-read, and turns
every "not there" into a `DataNotFoundError` that says what to do about it. MNIST is checked by
md5; CIFAR-10, CIFAR-100 and STL-10 by their structure (sizes, unpickling), which costs no pass
over STL-10's 2.6 GB and also reads a re-packed copy or a subset of them (with a warning), like
the offline CIFAR-10 subset and the small files the tests write.
"""

import logging
from pathlib import Path

import numpy as np
import sklearn.datasets
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, STL10
from torchvision.datasets.utils import calculate_md5, download_and_extract_archive

from orbitcl.data.cifar_files import read_batches, read_class_names
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


# CIFAR-10's files: the published ones (torchvision's md5s), and the offline data copy's subset,
# the first 4000 train and 1000 test images in their original order, re-packed.
CIFAR10_TRAIN = [name for name, _ in CIFAR10.train_list]  # data_batch_1 ... data_batch_5
CIFAR10_TEST = CIFAR10.test_list[0][0]  # test_batch
CIFAR10_META = CIFAR10.meta["filename"]  # batches.meta
_CIFAR10_PUBLISHED = {name: md5 for name, md5 in [*CIFAR10.train_list, *CIFAR10.test_list]}
_CIFAR10_PUBLISHED[CIFAR10_META] = CIFAR10.meta["md5"]
_CIFAR10_SUBSET = {
    "data_batch_1": "327c98428ca3c4040c396c7b5ede0d7b",
    "test_batch": "4f349ffc127980c8746238878b5cfeac",
    CIFAR10_META: CIFAR10.meta["md5"],
}


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
        raise _not_found("MNIST", root, folder, _MNIST_FILES, problems, error) from error


def load_mnist(data_dir: str | Path, train: bool, download: bool) -> Split:
    """MNIST: 60000 train / 10000 test, 1x28x28."""
    ensure_mnist(data_dir, download)
    mnist = MNIST(_root(data_dir, "MNIST"), train=train)
    return mnist.data.unsqueeze(1), mnist.targets  # (N, 28, 28) -> (N, 1, 28, 28)


def ensure_cifar10(data_dir: str | Path, download: bool) -> list[str]:
    """Makes sure `<data_dir>/cifar-10-batches-py` holds CIFAR-10's test batch, meta file and at
    least one training batch, downloading the dataset if allowed; returns the training batches
    there."""
    root = _root(data_dir, "CIFAR-10")
    folder = root / CIFAR10.base_folder
    error = None
    if _cifar10_problems(folder) and download:
        try:
            _download(CIFAR10, root)
        except (OSError, RuntimeError) as err:
            error = err
    if problems := _cifar10_problems(folder):
        expected = dict.fromkeys([*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META])
        note = " (at least one data_batch_N)"
        raise _not_found("CIFAR-10", root, folder, expected, problems, error, note=note) from error
    return [name for name in CIFAR10_TRAIN if (folder / name).is_file()]


def load_cifar10(data_dir: str | Path, train: bool, download: bool) -> Split:
    """CIFAR-10: 50000 train / 10000 test, 3x32x32, from the published files or any re-packed
    or partial copy of them (the offline subset: 4000 / 1000), with a warning then."""
    batches = ensure_cifar10(data_dir, download)
    folder = _root(data_dir, "CIFAR-10") / CIFAR10.base_folder
    split = "train" if train else "test"
    read_class_names(folder / CIFAR10_META, "label_names", 10, "CIFAR-10", split)
    names = batches if train else [CIFAR10_TEST]
    images, labels = read_batches(folder, names, "labels", 10, "CIFAR-10", split)
    published = 50000 if train else 10000
    if _matches(folder, names, _CIFAR10_PUBLISHED):
        return images, labels
    if _matches(folder, names, _CIFAR10_SUBSET):
        log.warning(
            "CIFAR-10 %s split: using the offline SUBSET of %d images (full split: %d), "
            "so results are not comparable with the full dataset",
            split,
            len(images),
            published,
        )
        return images, labels
    log.warning(
        "CIFAR-10 %s split: %s in %s match no published md5, so they were read by their "
        "structure (a re-packed or partial copy)",
        split,
        ", ".join(names),
        folder,
    )
    _warn_if_partial("CIFAR-10", split, len(images), published)
    return images, labels


class _STL10Files(STL10):
    """STL-10 as torchvision reads it, without its md5 checks (`md5` None: the file exists)."""

    train_list = [[name, None] for name, _ in STL10.train_list]
    test_list = [[name, None] for name, _ in STL10.test_list]


CIFAR100_FILES = [name for name, _ in [*CIFAR100.train_list, *CIFAR100.test_list]]
CIFAR100_FILES.append(CIFAR100.meta["filename"])  # train, test, meta
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
    read_class_names(
        folder / CIFAR100.meta["filename"], "fine_label_names", 100, "CIFAR-100", split
    )
    images, labels = read_batches(folder, [split], "fine_labels", 100, "CIFAR-100", split)
    _warn_if_partial("CIFAR-100", split, len(images), 50000 if train else 10000)
    return images, labels


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
            _download(torchvision_cls, root)
        except (OSError, RuntimeError) as err:
            error = err
    if problems := _problems(folder, expected):
        raise _not_found(dataset, root, folder, expected, problems, error, archive) from error


def _download(torchvision_cls: type, root: Path) -> None:
    """Downloads and extracts a torchvision dataset's archive (its md5 checked), as its
    `download=True` does, without then reading the files as torchvision would."""
    archive, md5 = torchvision_cls.filename, torchvision_cls.tgz_md5
    download_and_extract_archive(torchvision_cls.url, root, filename=archive, md5=md5)


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


def _cifar10_problems(folder: Path) -> dict[str, str]:
    """File name -> "missing", for the CIFAR-10 files a copy cannot do without: the test batch,
    the meta file and (reported as data_batch_1) every training batch; empty if none is."""
    problems = _problems(folder, dict.fromkeys([CIFAR10_TEST, CIFAR10_META]))
    if not any((folder / name).is_file() for name in CIFAR10_TRAIN):
        problems[CIFAR10_TRAIN[0]] = "missing"
    return problems


def _matches(folder: Path, names: list[str], md5s: dict[str, str]) -> bool:
    """Whether every file of `names` in `folder` has its md5 in `md5s`."""
    return all(name in md5s and calculate_md5(folder / name) == md5s[name] for name in names)


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
    expected: dict[str, str | None],
    problems: dict[str, str],
    error: Exception | None,
    archive: str | None = None,
    note: str = "",
) -> DataNotFoundError:
    """The error for the files of `expected` (names, in order) that have `problems`."""
    download = (
        f"Downloading failed: {str(error).strip()}"
        if error is not None
        else "Nothing was downloaded (dataset.download=false)."
    )
    return DataNotFoundError(
        f"{dataset} data is missing or corrupt in {folder}{note}:\n"
        + "".join(f"  {name}: {problems.get(name, 'ok')}\n" for name in expected)
        + f"{download}\n"
        "To provide the files: set dataset.download=true when online; or copy them into that "
        "folder (delete corrupt ones first); or point dataset.data_dir=... (or the "
        f"ORBITCL_DATA_DIR environment variable) at a folder holding "
        f"{folder.relative_to(root)}/<files>."
        + (f" The files come in {archive}, extracted into the data folder." if archive else "")
    )

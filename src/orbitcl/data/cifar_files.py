"""CIFAR's python files read by their structure: each batch a pickled dict of `data` (N, 3072)
uint8 rows (the R, G, B planes of a 32x32 image) and N labels, the meta file a dict of class
names. Every file goes through the restricted unpickler (`safe_pickle`), so a file from elsewhere
can fail to load but cannot run code; a file of another structure is named, not half-read."""

import pickle
from pathlib import Path

import numpy as np
import torch

from orbitcl.data.errors import DataNotFoundError
from orbitcl.data.safe_pickle import RefusedPickleError, load_pickle

_IMAGE_BYTES = 3 * 32 * 32


def read_batches(
    folder: Path, names: list[str], label_key: str, n_classes: int, dataset: str, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images uint8 (N, 3, 32, 32) and labels int64 (N,) of the batch files `names` in
    `folder`, in that order; `label_key` is the labels' key ("labels", "fine_labels")."""
    images, labels = [], []
    for name in names:
        entry = _load(folder / name, dataset, split)
        data, targets = _batch_arrays(entry, label_key, n_classes)
        if isinstance(data, str):  # what is wrong with it
            raise _malformed(folder / name, dataset, split, data)
        images.append(data)
        labels.append(targets)
    stacked = torch.from_numpy(np.concatenate(images)).view(-1, 3, 32, 32)  # rows are R, G, B
    return stacked, torch.from_numpy(np.concatenate(labels))


def read_class_names(path: Path, key: str, n_classes: int, dataset: str, split: str) -> list[str]:
    """The class names a meta file holds under `key` ("label_names", "fine_label_names")."""
    entry = _load(path, dataset, split)
    names = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(names, list) or len(names) != n_classes:
        what = f"no list of {n_classes} class names under {key!r}"
        raise _malformed(path, dataset, split, what)
    return [str(name) for name in names]


def _load(path: Path, dataset: str, split: str):
    try:
        return load_pickle(path, "CIFAR")
    except RefusedPickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as err:
        problem = f"corrupt or truncated ({err.__class__.__name__}: {err})"
        raise _malformed(path, dataset, split, problem) from err


def _batch_arrays(entry, label_key: str, n_classes: int):
    """(data (N, 3072) uint8, labels (N,) int64), or (what is wrong, None)."""
    if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
        return f"not a dict holding 'data' and {label_key!r}", None
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        return "its 'data' is not a 2-D uint8 array", None
    if data.shape[1] != _IMAGE_BYTES or not len(data):
        return f"its 'data' has shape {data.shape}, not (N, {_IMAGE_BYTES}) with N > 0", None
    try:
        labels = np.asarray(entry[label_key])
    except (TypeError, ValueError):
        labels = np.asarray([])
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        return f"its {label_key!r} are not {len(data)} integers, one per image", None
    if labels.min() < 0 or labels.max() >= n_classes:
        return f"its {label_key!r} lie outside 0..{n_classes - 1}", None
    return np.ascontiguousarray(data), labels.astype(np.int64)


def _malformed(path: Path, dataset: str, split: str, problem: str) -> DataNotFoundError:
    what = problem if problem.startswith("corrupt") else f"not a {dataset} file: {problem}"
    return DataNotFoundError(
        f"{dataset}'s {split} split cannot be read: {path} is {what}. Delete it and download "
        "again (dataset.download=true), or copy intact files there."
    )

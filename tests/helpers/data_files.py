"""Small datasets written by the tests themselves, in the formats orbitcl reads: image folders
(class folders or flat), CIFAR-10's and CIFAR-100's python pickles and STL-10's binaries
(torchvision's layout).
None of them can be downloaded here."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"cat": (200, 40, 40), "dog": (40, 40, 200), "owl": (40, 200, 40)}


def write_image_folder(
    root: Path, per_class: int = 20, classes=("cat", "dog"), size=(20, 24), seed: int = 0
) -> Path:
    """root/<class>/NN.png, each a noisy image of the class's colour, height x width `size`;
    with `classes` empty, root/NN.jpg of random pixels (a flat folder)."""
    rng = np.random.default_rng(seed)
    for name in classes or [None]:
        folder = root / name if name else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            if name:
                noisy = np.array(COLOURS[name]) + rng.normal(0, 30, (*size, 3))
                pixels, suffix = np.clip(noisy, 0, 255).astype(np.uint8), "png"
            else:
                pixels, suffix = rng.integers(0, 256, (*size, 3), dtype=np.uint8), "jpg"
            Image.fromarray(pixels).save(folder / f"{i:02d}.{suffix}")
    return root


def write_cifar10(
    data_dir: Path, batches=(40, 24), n_test: int = 16, seed: int = 0, protocol: int = 4
) -> Path:
    """data_dir/cifar-10-batches-py/{data_batch_1, ..., test_batch, batches.meta}: one training
    batch of each size in `batches`, random images, labels 0..9 in turn, pickled with `protocol`
    (2: as Python 2 era files, with bytes through `_codecs.encode`). Returns the folder."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i + 1}" for i in range(len(batches))] + ["test_batch"]
    for name, n in zip(names, [*batches, n_test], strict=True):
        entry = {
            "batch_label": name,
            "data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),  # R, G, B planes
            "labels": [i % 10 for i in range(n)],
            "filenames": [f"{name}_{i}.png" for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 10000}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


def write_cifar100(data_dir: Path, n_train: int = 48, n_test: int = 16, seed: int = 0) -> Path:
    """data_dir/cifar-100-python/{train,test,meta}: random images, fine labels 0..99 in turn.
    Returns the folder."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {
            "data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),  # R, G, B planes
            "fine_labels": [i % 100 for i in range(n)],
            "coarse_labels": [i % 20 for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": [f"class{i}" for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return folder


def write_stl10(
    data_dir: Path, n_train: int = 24, n_test: int = 16, n_unlabeled: int = 40, seed: int = 0
) -> dict[str, np.ndarray]:
    """data_dir/stl10_binary/*: random 3x96x96 images stored as STL-10 stores them (each channel
    column-major), labels 1..10 in turn. Returns the images of each split, (N, 3, 96, 96)."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "stl10_binary"
    folder.mkdir(parents=True)
    images = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images[split] = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(images[split].transpose(0, 1, 3, 2).tobytes())
        if split != "unlabeled":
            labels = np.arange(n, dtype=np.uint8) % 10 + 1
            (folder / f"{split}_y.bin").write_bytes(labels.tobytes())
    return images

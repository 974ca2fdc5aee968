"""What the loss terms need from the training labels, checked and served before training starts:
labels of the kind they take (class or continuous), the training split loaded (a class-imbalanced
subset is checked against the data here), X-CLR's class similarity from the training images, and
the training class counts, logged and kept in the run."""

import json
import logging
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from orbitcl.data import MultiViewDataModule
from orbitcl.data.stats import class_mean_cosines
from orbitcl.training.config import ConfigError
from orbitcl.training.objectives import needs_of

log = logging.getLogger(__name__)

CLASS_COUNTS_FILE = "class_counts.json"


def check_labels(datamodule: MultiViewDataModule, terms: dict[str, nn.Module]) -> None:
    """A loss term that needs labels stops the run if some training images have none or have
    the other kind (class indices for y-Aware, continuous ones for SupCon, X-CLR, ...). Reads no
    data. (The diagnostics that need labels are skipped instead: `callbacks.requirements`.)"""
    missing = datamodule.missing_labels  # e.g. "root='/data/x' is a flat folder of images, ..."
    continuous = datamodule.continuous_labels  # e.g. "label_space='circle' labels each ..."
    for field, term in terms.items():
        needs = needs_of(term)
        if not needs.labels:
            continue
        kind = "a continuous" if needs.continuous_labels else "the class"
        problem = None
        if missing is not None:
            problem = f"it needs {kind} label of every training image, and dataset.{missing}"
        elif needs.continuous_labels and continuous is None:
            problem = (
                f"it needs continuous labels (e.g. dataset=rotated_mnist), and "
                f"{datamodule.__class__.__name__} labels its training images by class"
            )
        elif not needs.continuous_labels and continuous is not None:
            problem = f"it needs the class of every training image, and dataset.{continuous}"
        if problem is not None:
            raise ConfigError(f"{field}={term.__class__.__name__} is invalid: {problem}")


def load_training_data(datamodule: MultiViewDataModule) -> list[int] | None:
    """Loads the splits (`setup`, which Lightning then finds done) and returns the training
    images per class (None without class labels). A class-imbalanced subset the data cannot give
    (more images than a class has, labels missing) stops here, naming the field."""
    try:
        datamodule.setup("fit")
    except ValueError as err:  # the datamodule's messages start with its argument
        raise ConfigError(f"dataset.{err}") from err
    return datamodule.train_class_counts()


def serve_class_similarity(datamodule: MultiViewDataModule, terms: dict[str, nn.Module]) -> None:
    """Hands the terms that need it (X-CLR's `class_means`) the cosines between the mean
    training images of the classes, raw pixels (geometry.md), once the data is loaded."""
    needing = {field: term for field, term in terms.items() if needs_of(term).class_similarity}
    if not needing:
        return
    images, labels = datamodule.training_split
    try:
        similarity = class_mean_cosines(images, labels, datamodule.num_classes)
    except ValueError as err:
        field = next(iter(needing))
        raise ConfigError(f"{field}.class_similarity='class_means' is invalid: {err}") from err
    matrix = np.array2string(similarity.numpy(), precision=3, max_line_width=100)
    log.info("Class similarity (cosines of the mean training images):\n%s", matrix)
    for term in needing.values():
        term.set_class_similarity(similarity)


@rank_zero_only
def save_class_counts(run_dir: Path, datamodule: MultiViewDataModule, counts: list[int]) -> None:
    """Logs the training class counts and writes them, with how they were chosen, to
    `<run_dir>/class_counts.json`."""
    record = {
        "class_counts": counts,
        "imbalance_ratio": datamodule.imbalance_ratio,
        "requested_class_counts": datamodule.requested_counts,
        "subset_seed": datamodule.subset_seed if datamodule.subsampled else None,
    }
    log.info("Training images per class: %s (%d in all)", counts, sum(counts))
    (Path(run_dir) / CLASS_COUNTS_FILE).write_text(json.dumps(record, indent=2) + "\n")

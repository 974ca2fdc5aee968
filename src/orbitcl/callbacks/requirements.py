"""What a diagnostic needs from the data, checked once when training starts: a callback whose
needs the datamodule does not meet is left out with one log line, instead of failing at its
first validation. And what the tension diagnostics need from the loss (``tension_applies``).

Each callback declares a class attribute `needs = DataNeeds(...)`; the datamodule says what it
provides with `offers()` (`orbitcl.data.MultiViewDataModule`): for each field of `DataNeeds`,
None if it provides it, else why not, in the words of the dataset argument responsible.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, fields

from lightning.pytorch.utilities import rank_zero_only

from orbitcl.losses.base import Loss

log = logging.getLogger(__name__)

# What each need is, in the skip message: "it needs <this>".
_WHAT = {
    "class_labels": "class labels on the test split",
    "training_class_labels": "class labels on the training images",
    "test_split": "a test split",
}


@dataclass(frozen=True)
class DataNeeds:
    """What a consumer of the data needs beyond training images."""

    class_labels: bool = False  # the test split (and the kNN bank) labelled by class
    training_class_labels: bool = False  # training images labelled by class (not continuous)
    test_split: bool = False  # held-out images to measure on


NOTHING = DataNeeds()


def unmet(needs: DataNeeds, datamodule) -> list[str]:
    """One phrase per reason that `datamodule` does not meet `needs`, the needs it leaves unmet
    first: "class labels on the test split (dataset.root='/x' is a flat folder of images, ...)"."""
    offers = datamodule.offers()
    by_reason: dict[str, list[str]] = {}
    for field in fields(needs):
        if getattr(needs, field.name) and offers[field.name] is not None:
            by_reason.setdefault(offers[field.name], []).append(_WHAT[field.name])
    return [f"{' and '.join(what)} (dataset.{reason})" for reason, what in by_reason.items()]


def skipped(what: str, needs: DataNeeds, datamodule) -> bool:
    """Whether `what` (e.g. "callbacks.umap (UMAPPlot)") must be skipped, `datamodule` not
    meeting its `needs`; if so, logs one line (rank zero) that says so and why."""
    missing = unmet(needs, datamodule)
    if missing and rank_zero_only.rank == 0:
        log.warning("%s skipped: it needs %s", what, "; and ".join(missing))
    return bool(missing)


def usable_callbacks(callbacks: Iterable[tuple[str, object]], datamodule) -> list:
    """The callbacks, `(config key, callback)` pairs, whose `needs` the set-up `datamodule`
    meets, in order; each other one is logged, once, as skipped. A callback without `needs`
    needs nothing."""
    return [
        callback
        for key, callback in callbacks
        if not skipped(
            f"{key} ({callback.__class__.__name__})",
            getattr(callback, "needs", NOTHING),
            datamodule,
        )
    ]


def tension_applies(what: str, loss) -> bool:
    """Whether the tension diagnostic `what` (e.g. "callbacks.tension (TensionMonitor)") has
    something to measure for `loss`: ORL's tension weighs an anchor's negatives, so with a loss
    that contrasts none (``Loss.contrasts_negatives``: SimSiam, BYOL, VICReg, Barlow Twins) it
    is left out, and one log line (rank zero) names the loss. A loss module from outside
    orbitcl is measured, as before this check."""
    if not isinstance(loss, Loss) or loss.contrasts_negatives:
        return True
    if rank_zero_only.rank == 0:
        log.warning(
            "%s left out: the tension is ORL's weight of an anchor's negatives (docs/orl.md), "
            "and the loss %s contrasts no negatives",
            what,
            loss.__class__.__name__,
        )
    return False

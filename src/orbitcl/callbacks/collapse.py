"""Collapse monitor: the SimSiam paper's standard deviation of the normalised embeddings at each
validation, with a warning that names a run whose projections collapse."""

import logging

import lightning as L
from torch import Tensor

from orbitcl.callbacks import names
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.checks.numbers import require_in, require_int
from orbitcl.metrics.collapse import collapse_std, collapse_threshold
from orbitcl.metrics.orbits import embed, fixed_test_images

log = logging.getLogger(__name__)


class CollapseMonitor(L.Callback):
    """At the end of each validation, on ``n_images`` fixed test images (held uint8, normalised
    on the model's device by the datamodule's ``normalise``: the eval transform; chosen once from
    ``seed``: at the defaults the spectrum diagnostics' anchors, the orbit diagnostics' among
    them), logs ``collapse/std`` for the projections and
    ``collapse/encoder/std`` for the encoder features (``metrics.collapse.collapse_std``: about
    ``1/sqrt(d)`` when not collapsed, 0 when collapsed; Chen and He 2021, Fig. 2).

    When the projections' value falls below ``threshold_fraction / sqrt(d)`` it warns, once each
    time it falls, that the run (its directory) is collapsing. The default fraction, 0.2, fires
    for certain when the total variance ``1 - ||mu||^2`` of the unit projections is below
    ``0.2^2 = 0.04`` (all within about 12 degrees of their mean direction), and for projections
    spread evenly over fewer than ``0.04 d`` of the coordinate axes; trained NT-Xent and ORL
    projections on MNIST sit well above it (docs/beyond_negatives.md). The encoder's value is
    not warned about: its features (after a ReLU, all >= 0) share a mean direction by design,
    which lowers the value without any collapse.

    One forward pass over ``n_images`` images per validation, rank zero only.
    """

    needs = DataNeeds(test_split=True)  # no labels: any held-out images

    def __init__(
        self,
        n_images: int = 500,
        seed: int = 0,
        threshold_fraction: float = 0.2,
        batch_size: int = 256,
    ):
        super().__init__()
        require_int("n_images", n_images, 2)  # a standard deviation needs two
        require_in("threshold_fraction", threshold_fraction, 0, 1, "(]")
        self.n_images = n_images
        self.seed = seed
        self.threshold_fraction = threshold_fraction
        self.batch_size = batch_size
        self._images: Tensor | None = None
        self._collapsing = False  # warned since it last stood above the threshold

    def images(self, trainer: L.Trainer) -> Tensor:
        """The fixed test images, uint8 (B, C, H, W), chosen at the first call."""
        if self._images is None:
            self._images = fixed_test_images(trainer.datamodule, self.n_images, self.seed)
        return self._images

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        images, normalise = self.images(trainer), trainer.datamodule.normalise
        h, z = embed(pl_module.encoder, pl_module.projector, images, self.batch_size, normalise)
        std = collapse_std(z)  # z: (B, d)
        pl_module.log(names.collapse_metric("std"), std, rank_zero_only=True)
        pl_module.log(names.collapse_metric("std", "encoder"), collapse_std(h), rank_zero_only=True)
        threshold = collapse_threshold(self.threshold_fraction, z.shape[1])
        if std >= threshold:
            self._collapsing = False
        elif not self._collapsing:
            self._collapsing = True
            log.warning(
                "run %s is collapsing at step %d: %s = %.4g is below %.4g "
                "(threshold_fraction %g of 1/sqrt(d), d = %d)",
                trainer.default_root_dir,
                trainer.global_step,
                names.collapse_metric("std"),
                std,
                threshold,
                self.threshold_fraction,
                z.shape[1],
            )

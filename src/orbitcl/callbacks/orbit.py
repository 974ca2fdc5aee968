"""Orbit diagnostics: how tightly the views of one image cluster, measured at every validation."""

import lightning as L

from orbitcl.callbacks import names
from orbitcl.callbacks.outputs import log_histogram, save_plot
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.checks.numbers import require_int
from orbitcl.metrics import geometry
from orbitcl.metrics.orbits import Orbits, embed_orbits, orbits_of_test_split
from orbitcl.tracking import plots


class OrbitDiagnostics(L.Callback):
    """At the end of each validation, on `n_anchors` fixed test images with `n_views` fixed
    augmented views each, logs in projector space

        orbit/anchor_view_cos, orbit/variance, orbit/pairwise_cos,
        geometry/alignment, geometry/uniformity

    (definitions: `orbitcl.metrics.geometry.orbit_metrics`) and the same in encoder space as
    `orbit/encoder/...` and `geometry/encoder/...`. The histogram of the A*K projector-space
    anchor-view cosines goes to `plots/orbit_cos_stepNNNNNN.png` and, under W&B, to histogram
    `orbit/anchor_view_cos_hist` and image `orbit/anchor_view_cos_plot`.

    The images are the test split as the validation queries loader serves it (the second of
    the datamodule's [bank, queries] loaders: uint8, normalised on the model's device by the
    datamodule's `normalise`), the views come from the datamodule's `train_transform`; both are
    drawn once from `seed`, so every validation sees the same orbits. Cost: one forward pass
    over A*(K+1) images (2200 at the defaults). Rank zero only.
    """

    needs = DataNeeds(test_split=True)  # no labels: views of an image are its orbit

    def __init__(
        self,
        n_anchors: int = 200,
        n_views: int = 10,
        seed: int = 0,
        bins: int = 50,
        batch_size: int = 256,
    ):
        super().__init__()
        require_int("n_views", n_views, 2)  # an orbit's pairs need two views
        self.n_anchors = n_anchors
        self.n_views = n_views
        self.seed = seed
        self.bins = bins
        self.batch_size = batch_size
        self._orbits: Orbits | None = None

    def orbits(self, trainer: L.Trainer) -> Orbits:
        """The fixed orbits, drawn at the first call."""
        if self._orbits is None:
            self._orbits = orbits_of_test_split(
                trainer.datamodule, self.n_anchors, self.n_views, self.seed
            )
        return self._orbits

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        orbits, normalise = self.orbits(trainer), trainer.datamodule.normalise
        spaces = embed_orbits(
            pl_module.encoder, pl_module.projector, orbits, self.batch_size, normalise
        )
        for space, (anchors, views) in spaces.items():  # (A, d), (A, K, d)
            for name, value in geometry.orbit_metrics(anchors, views).items():
                pl_module.log(names.orbit_metric(name, space), value, rank_zero_only=True)

        cosines = geometry.anchor_view_cosine(*spaces["projector"])  # (A, K)
        log_histogram(trainer, "orbit/anchor_view_cos_hist", cosines, self.bins, -1.0, 1.0)
        a, k = cosines.shape
        title = f"anchor-view cosine, projector space ({a} x {k}), step {trainer.global_step}"
        fig = plots.cosine_histograms({"this run": cosines}, title, self.bins)
        name = f"orbit_cos_step{trainer.global_step:06d}.png"
        save_plot(trainer, fig, name, "orbit/anchor_view_cos_plot")

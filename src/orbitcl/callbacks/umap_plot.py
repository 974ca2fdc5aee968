"""UMAP of projector embeddings: orbits and classes as a picture, every few epochs."""

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from orbitcl.callbacks.outputs import save_plot
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.checks.numbers import require_int
from orbitcl.metrics.orbits import Orbits, embed, orbits_of_test_split
from orbitcl.tracking import plots


class UMAPPlot(L.Callback):
    """Every `every_n_epochs` epochs, after the last epoch and at a stand-alone validation: a
    UMAP (cosine metric) of the projector embeddings of `n_images` fixed test images x `n_views`
    fixed augmented views, coloured by class, with the first `n_orbits_drawn` orbits joined to
    their centres. Written to `plots/umap_stepNNNNNN.png` and, under W&B, image `umap/projector`.

    Runs after validation, on rank zero only. Cost: a forward pass over M*K images plus the UMAP
    fit, ~3 s for 1500 points on a CPU core, and ~6 s more the first time in a process (numba
    compiles UMAP's kernels): hence every few epochs, not every epoch.

    Without class labels (a flat folder) every point has the colour of label -1.
    """

    needs = DataNeeds(test_split=True)

    def __init__(
        self,
        every_n_epochs: int = 5,
        n_images: int = 300,
        n_views: int = 5,
        n_orbits_drawn: int = 6,
        seed: int = 0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        batch_size: int = 256,
    ):
        super().__init__()
        require_int("every_n_epochs", every_n_epochs, 1)
        self.every_n_epochs = every_n_epochs
        self.n_images = n_images
        self.n_views = n_views
        self.n_orbits_drawn = n_orbits_drawn
        self.seed = seed
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.batch_size = batch_size
        self._orbits: Orbits | None = None
        self._last_drawn_step = -1

    def _due(self, trainer: L.Trainer) -> bool:
        if trainer.global_step == self._last_drawn_step:  # several validations in one step
            return False
        if trainer.state.fn == TrainerFn.VALIDATING:  # e.g. fit.py's final validate()
            return True
        epochs_done = trainer.current_epoch + 1
        last_epoch = (trainer.max_epochs or -1) > 0 and epochs_done >= trainer.max_epochs
        last_step = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        return epochs_done % self.every_n_epochs == 0 or last_epoch or last_step

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self._due(trainer):
            return
        self._last_drawn_step = trainer.global_step
        if self._orbits is None:
            self._orbits = orbits_of_test_split(
                trainer.datamodule, self.n_images, self.n_views, self.seed
            )
        views = self._orbits.views  # (M, K, C, H, W)
        _, projections = embed(
            pl_module.encoder, pl_module.projector, views.flatten(0, 1), self.batch_size
        )  # (M*K, d)
        xy = plots.umap_coordinates(projections, self.seed, self.n_neighbors, self.min_dist)
        xy = xy.reshape(*views.shape[:2], 2)  # (M*K, 2) -> (M, K, 2)
        step = trainer.global_step
        title = f"UMAP of projector embeddings (cosine), {views.shape[1]} views/image"
        panel = {f"epoch {trainer.current_epoch}, step {step}": (xy, self._orbits.labels)}
        fig = plots.umap_panels(panel, self.n_orbits_drawn, title)
        save_plot(trainer, fig, f"umap_step{step:06d}.png", "umap/projector")

"""Similarities of positives and negatives (Lee et al. 2025): on fixed training images at each
validation, and on the training batch every N steps (the mini-batch effect is in-batch)."""

import lightning as L
import torch

from orbitcl.callbacks import names
from orbitcl.callbacks.outputs import log_scalars, save_plot
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.checks.numbers import require_int
from orbitcl.metrics import similarity
from orbitcl.metrics.orbits import Orbits, embed, sample_orbits
from orbitcl.tracking import plots


class SimilarityStatistics(L.Callback):
    """Means and variances of the cosine similarities of positive pairs, cross-view and
    within-view negative pairs, in projector space (``docs/geometry.md``, "Similarities of
    positives and negatives"; definitions: ``orbitcl.metrics.similarity``).

    At the end of each validation, on ``n_images`` fixed training images (the paper's Table 1:
    5,000) with 2 fixed augmented views each (the datamodule's ``train_transform``, or its
    batched pipeline if the run uses it; drawn once from ``seed``), model in eval mode, logs
    ``similarity/pos_mean``, ``/pos_var``, ``/neg_cross_mean``, ``/neg_cross_var``,
    ``/neg_within_mean``, ``/neg_within_var`` and the references
    ``similarity/bound_neg_optimum`` (``-1/(n-1)``, n training images), ``/bound_pos_mean``
    (Thm 5.2's upper bound on ``pos_mean``), ``/bound_neg_var_low`` and ``_high`` (the range of
    ``Var[s_neg]`` for fixed batches of the training batch size); the three histograms go to
    ``plots/similarity_stepNNNNNN.png`` (W&B, TensorBoard: ``similarity/hist_plot``).

    At the first step and every ``every_n_steps`` steps after, the same on the training batch
    just used (its two first views, as the loss saw them, train mode) as
    ``similarity/batch/...``. Rank zero only; under DDP the batch statistics are rank zero's
    share of the global batch.

    Cost: a forward pass over 2 x ``n_images`` images per validation and blocks of Gram rows
    (``metrics.similarity``: no M x M matrix kept); the views are drawn once.
    """

    needs = DataNeeds()  # training images alone: runs on any data

    def __init__(
        self,
        n_images: int = 5000,
        every_n_steps: int = 50,
        seed: int = 0,
        bins: int = 100,
        batch_size: int = 256,
    ):
        super().__init__()
        require_int("n_images", n_images, 2)
        require_int("every_n_steps", every_n_steps, 1)
        self.n_images = n_images
        self.every_n_steps = every_n_steps
        self.seed = seed
        self.bins = bins
        self.batch_size = batch_size
        self._pairs: Orbits | None = None
        self._n_train: int | None = None  # n, the training-set size
        self._last_logged_step = -1

    def pairs(self, trainer: L.Trainer) -> Orbits:
        """The fixed training images with their 2 views, drawn at the first call."""
        if self._pairs is None:
            datamodule = trainer.datamodule
            # The images training draws from (not the kNN bank: STL-10's is its labelled split).
            images, labels = datamodule.training_split
            self._n_train = len(images)
            # The training views themselves: the batched pipeline's where it is the run's.
            batched = getattr(datamodule, "batch_augment", None) is not None
            self._pairs = sample_orbits(
                images,
                labels,
                self.n_images,
                2,
                view_transform=datamodule.train_transform,
                seed=self.seed,
                batch_transform=datamodule.augment_batch if batched else None,
            )
        return self._pairs

    def _metrics(self, sims: similarity.Similarities, m: int, n: int, b: int, batch: bool):
        stats = sims.statistics()
        stats.update(similarity.references(stats, m, n, b))
        return {names.similarity_metric(k, batch): v for k, v in stats.items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        step = trainer.global_step  # already counts this batch's optimisation step
        # The first step, then every N: a short run has a starting point too.
        if (step - 1) % self.every_n_steps != 0 or step == self._last_logged_step:
            return
        self._last_logged_step = step
        z_a, z_b = outputs["projections"][:2]  # (B, d) each, detached
        n = len(trainer.train_dataloader.dataset)
        with torch.no_grad():
            sims = similarity.similarities(z_a, z_b, bins=self.bins)
        log_scalars(trainer, self._metrics(sims, len(z_a), n, len(z_a), batch=True))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        pairs = self.pairs(trainer)
        m = len(pairs.views)
        images = pairs.views.transpose(0, 1).flatten(0, 1)  # (M, 2, ...) -> (2M, ...): u; v
        _, z = embed(pl_module.encoder, pl_module.projector, images, self.batch_size)  # (2M, d)
        sims = similarity.similarities(z[:m], z[m:], bins=self.bins)
        n, b = self._n_train, trainer.datamodule.batch_size * trainer.world_size  # global batch
        for name, value in self._metrics(sims, m, n, b, batch=False).items():
            pl_module.log(name, value, rank_zero_only=True)
        step = trainer.global_step
        title = f"similarities, projector space ({m} training images x 2 views), step {step}"
        marks = {"-1/(n-1)": similarity.optimum_negative(n)}
        fig = plots.similarity_histograms(sims.hist, sims.edges, title, marks)
        save_plot(trainer, fig, f"similarity_step{step:06d}.png", "similarity/hist_plot")

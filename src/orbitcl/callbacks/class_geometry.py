"""Class geometry: how the classes of fixed test images lie in projector space at each
validation (``orbitcl.metrics.class_geometry``), and a heatmap of their prototype cosines."""

import lightning as L
import torch

from orbitcl.callbacks import names
from orbitcl.callbacks.outputs import save_plot
from orbitcl.metrics.class_geometry import class_geometry, prototype_cosines
from orbitcl.metrics.orbits import embed
from orbitcl.tracking import plots


class ClassGeometry(L.Callback):
    """At every validation, on up to ``n_per_class`` fixed test images of each class (eval
    transform, chosen once from ``seed``): logs ``classes/simplex_deviation``,
    ``classes/within_cos``, ``classes/between_cos`` and ``classes/gap``; draws the prototype
    cosine matrix to ``plots/class_geometry_stepNNNNNN.png`` (and the dashboards'
    ``classes/prototype_cosines``). Works for any loss: NT-Xent's classes have a geometry too.
    One forward pass over the chosen images per validation, rank zero only."""

    def __init__(self, n_per_class: int = 100, seed: int = 0, batch_size: int = 1024):
        super().__init__()
        if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 2:
            raise ValueError(f"n_per_class={n_per_class!r} is invalid: must be an integer >= 2")
        self.n_per_class = n_per_class
        self.seed = seed
        self.batch_size = batch_size
        self._chosen: tuple[torch.Tensor, torch.Tensor] | None = None

    def chosen(self, trainer: L.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, C, H, W) transformed, labels (B,)), drawn at the first call."""
        if self._chosen is None:
            queries = trainer.datamodule.val_dataloader()[1].dataset  # the test split
            generator = torch.Generator().manual_seed(self.seed)
            order = torch.randperm(len(queries.labels), generator=generator)
            labels = torch.as_tensor(queries.labels)[order]
            keep = (
                torch.cat(
                    [order[labels == c][: self.n_per_class] for c in labels.unique().tolist()]
                )
                .sort()
                .values
            )
            images = torch.stack([queries.transform(queries.images[i]) for i in keep.tolist()])
            self._chosen = images, torch.as_tensor(queries.labels)[keep]
        return self._chosen

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        images, labels = self.chosen(trainer)
        _, z = embed(pl_module.encoder, pl_module.projector, images, self.batch_size)
        n_classes = int(labels.max()) + 1
        for name, value in class_geometry(z, labels, n_classes).items():
            pl_module.log(names.class_metric(name), value, rank_zero_only=True)
        cosines = prototype_cosines(z, labels, n_classes)
        title = f"prototype cosines, projector space, step {trainer.global_step}"
        fig = plots.cosine_heatmap(cosines, title)
        name = f"class_geometry_step{trainer.global_step:06d}.png"
        save_plot(trainer, fig, name, names.class_metric("prototype_cosines"))

"""Class geometry: how the classes of fixed test images lie in projector space at each
validation (``orbitcl.metrics.class_geometry``), and a heatmap of their prototype cosines."""

import lightning as L
import torch
from torch import Tensor

from orbitcl.callbacks import names
from orbitcl.callbacks.outputs import save_plot
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.checks.numbers import require_int
from orbitcl.metrics.class_geometry import class_geometry, prototype_cosines
from orbitcl.metrics.orbits import embed
from orbitcl.tracking import plots


def images_per_class(datamodule, n_per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """Up to ``n_per_class`` test images of each class of a set-up datamodule, chosen by a
    permutation seeded with ``seed``, in the split's order: (images uint8 (B, C, H, W), as the
    split holds them, to embed with the datamodule's ``normalise``; labels (B,)). The recipe the
    callback and ``orbitcl.analyze`` share."""
    queries = datamodule.val_dataloader()[1].dataset  # the test split
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(queries.labels), generator=generator)
    labels = torch.as_tensor(queries.labels)[order]
    chosen = [order[labels == c][:n_per_class] for c in labels.unique().tolist()]
    keep = torch.cat(chosen).sort().values
    return queries.images[keep], torch.as_tensor(queries.labels)[keep]  # files: decoded here


class ClassGeometry(L.Callback):
    """At every validation, on up to ``n_per_class`` fixed test images of each class (held
    uint8, normalised on the model's device by the datamodule's ``normalise``; chosen once from
    ``seed``): logs ``classes/simplex_deviation``,
    ``classes/within_cos``, ``classes/between_cos``, ``classes/gap`` and
    ``classes/prototype_cos_std`` (``metrics.class_geometry``); draws the prototype
    cosine matrix to ``plots/class_geometry_stepNNNNNN.png`` (and the dashboards'
    ``classes/prototype_cosines``). Works for any loss: NT-Xent's classes have a geometry too.
    One forward pass over the chosen images per validation, rank zero only.

    When the training images per class (``train_class_counts()`` of the datamodule) are not all
    equal, it also logs ``classes/size_correlation``: Spearman's correlation over class pairs
    between ``n_c + n_c'`` and the prototype cosine ``M_cc'`` (geometry.md), negative where
    larger classes are pushed further apart. With equal counts (or continuous training labels)
    there are no sizes to correlate with, and it is not logged."""

    needs = DataNeeds(class_labels=True, test_split=True)

    def __init__(self, n_per_class: int = 100, seed: int = 0, batch_size: int = 256):
        super().__init__()
        require_int("n_per_class", n_per_class, 2)
        self.n_per_class = n_per_class
        self.seed = seed
        self.batch_size = batch_size
        self._chosen: tuple[Tensor, Tensor] | None = None
        self._sizes: Tensor | None = None  # training class counts, if unequal

    def chosen(self, trainer: L.Trainer) -> tuple[Tensor, Tensor]:
        """(images uint8 (B, C, H, W), labels (B,)), drawn at the first call; with them
        the training class counts, if unequal."""
        if self._chosen is None:
            datamodule = trainer.datamodule
            self._chosen = images_per_class(datamodule, self.n_per_class, self.seed)
            counts = datamodule.train_class_counts()
            if counts is not None and len(set(counts)) > 1:
                self._sizes = torch.tensor(counts)
        return self._chosen

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        images, labels = self.chosen(trainer)
        normalise = trainer.datamodule.normalise
        _, z = embed(pl_module.encoder, pl_module.projector, images, self.batch_size, normalise)
        n_classes = int(labels.max()) + 1
        for name, value in class_geometry(z, labels, n_classes, self._sizes).items():
            pl_module.log(names.class_metric(name), value, rank_zero_only=True)
        cosines = prototype_cosines(z, labels, n_classes)
        title = f"prototype cosines, projector space, step {trainer.global_step}"
        fig = plots.cosine_heatmap(cosines, title)
        name = f"class_geometry_step{trainer.global_step:06d}.png"
        save_plot(trainer, fig, name, names.class_metric("prototype_cosines"))

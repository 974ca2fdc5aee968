"""The spectrum of the representation over training: rank, decay and collapse of the encoder's
and the projector's embeddings of fixed orbits at each validation; with class labels, neural
collapse and the tension between classes (docs/representation.md)."""

import logging
import math

import lightning as L
import torch
from torch import Tensor

from orbitcl.callbacks import names
from orbitcl.callbacks.outputs import save_plot
from orbitcl.callbacks.requirements import DataNeeds, tension_applies
from orbitcl.checks.numbers import require_in, require_int
from orbitcl.data.stats import class_mean_cosines
from orbitcl.metrics import spectrum
from orbitcl.metrics.class_geometry import nc1, nc2
from orbitcl.metrics.class_tension import class_tension, rank_correlation
from orbitcl.metrics.knn import confusion_matrix, leave_one_out_predict
from orbitcl.metrics.orbits import Orbits, embed_orbits, sample_orbits
from orbitcl.tracking import plots

log = logging.getLogger(__name__)

SPACES = ("encoder", "projector")


class SpectrumDiagnostics(L.Callback):
    """At the end of each validation, on ``n_anchors`` fixed test images with ``n_views`` fixed
    augmented views each (the run's training augmentation, batched where the run's is; drawn once
    from ``seed``), model in eval mode, for the encoder features and the projections:

    - ``spectrum/rankme``, ``spectrum/alpha`` (alpha-ReQ) on the A x K view embeddings, and
      ``spectrum/lidar`` on the orbits (``metrics.spectrum``; the encoder's as
      ``spectrum/encoder/...``);
    - with class labels, on the A anchors: ``classes/nc1``, ``classes/nc2_equinorm`` and
      ``classes/nc2_equiangularity`` (``metrics.class_geometry``), and the tension between
      classes of the projections of two views (``metrics.class_tension``, ORL's tension at the
      run's ``t_min`` and ``temperature``): ``classes/tension_confusion_spearman`` (and
      ``share_...``), its rank correlation with the confusion matrix of a leave-one-out kNN on the
      anchors' encoder features, and ``classes/tension_image_cos_spearman``, with the cosines of
      the classes' mean training images; the four matrices go to
      ``plots/class_tension_stepNNNNNN.png`` (dashboards: ``classes/tension_plot``).

    The collapse picture, ``log(sigma_k / sigma_1)`` of each space against the training step so
    far, goes to ``plots/spectrum_stepNNNNNN.png`` (dashboards: ``spectrum/collapse_plot``).

    Without class labels the label parts are skipped with one log line; without test images the
    whole callback is. With a loss that contrasts no negatives (SimSiam, BYOL, VICReg, Barlow
    Twins) the class tension, ORL's, is left out with one log line when training starts. One
    forward pass over A (K + 1) images per validation, rank zero only.
    """

    # The test split's orbits; class labels are optional (without them only classes/nc1,
    # classes/nc2_* and the class tension are left out, with one log line).
    needs = DataNeeds(test_split=True)

    def __init__(
        self,
        n_anchors: int = 500,
        n_views: int = 4,
        seed: int = 0,
        batch_size: int = 256,
        temperature: float = 0.5,
        t_min: float = 1e-6,
        knn_k: int = 20,
        knn_temperature: float = 0.1,
        alpha_start: int = spectrum.ALPHA_START,
        alpha_end: int = spectrum.ALPHA_END,
    ):
        super().__init__()
        require_int("n_anchors", n_anchors, 2)
        require_int("n_views", n_views, 2)
        require_int("knn_k", knn_k, 1)
        require_in("temperature", temperature, 0, math.inf, "()")  # ORL's, for the tension
        require_in("t_min", t_min, 0, 1, "(]")
        require_in("knn_temperature", knn_temperature, 0, math.inf, "()")
        require_int("alpha_start", alpha_start, 1)
        require_int("alpha_end", alpha_end, alpha_start + 1)
        self.n_anchors = n_anchors
        self.n_views = n_views
        self.seed = seed
        self.batch_size = batch_size
        self.temperature = temperature
        self.t_min = t_min
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.alpha_range = alpha_start, alpha_end  # alpha-ReQ's fitted ranks, 1-based, inclusive
        self._orbits: Orbits | None = None
        self._n_classes = 0
        self._image_cosines: Tensor | None = None
        self._disabled = False
        self._class_tension: bool | None = None  # for the module's loss: decided at setup
        self.steps: list[int] = []
        self.history: dict[str, list[Tensor]] = {space: [] for space in SPACES}

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self._class_tension is None:  # setup runs again for a validation after fit
            what = "the class tension of SpectrumDiagnostics (classes/tension_*, share_*)"
            self._class_tension = tension_applies(what, pl_module.loss)

    def orbits(self, trainer: L.Trainer) -> Orbits | None:
        """The fixed orbits of test images, drawn at the first call; None without test images."""
        if self._orbits is None and not self._disabled:
            datamodule = trainer.datamodule
            queries = datamodule.val_dataloader()[-1].dataset  # the test split
            if len(queries) < 2:
                log.info("spectrum diagnostics skipped: fewer than 2 test images")
                self._disabled = True
                return None
            batched = getattr(datamodule, "batch_augment", None) is not None
            self._orbits = sample_orbits(
                queries.images,
                torch.as_tensor(queries.labels),
                self.n_anchors,
                self.n_views,
                view_transform=datamodule.train_transform,
                seed=self.seed,
                batch_transform=datamodule.augment_batch if batched else None,
            )
            offers = datamodule.offers()  # None where the data provides a need, else why not
            labelled = offers["class_labels"] is None
            self._n_classes = int(datamodule.num_classes or 0) if labelled else 0
            if self._n_classes < 2:
                log.info(
                    "classes/nc1, classes/nc2_* and the class tension skipped: no class labels"
                )
            elif offers["training_class_labels"] is None:
                images, labels = datamodule.training_split
                present = torch.as_tensor(labels).unique().numel()
                if present == self._n_classes:  # every class has a mean image
                    self._image_cosines = class_mean_cosines(images, labels, self._n_classes)
                else:
                    log.info(
                        "classes/tension_image_cos_spearman left out: %d of %d classes have "
                        "training images",
                        present,
                        self._n_classes,
                    )
            else:  # angles (rotated MNIST) or unlabelled training images (STL-10 unlabeled)
                log.info(
                    "classes/tension_image_cos_spearman left out: no class labels on the "
                    "training images (dataset.%s)",
                    offers["training_class_labels"],
                )
        return self._orbits

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        orbits = self.orbits(trainer)
        if orbits is None:
            return
        normalise = trainer.datamodule.normalise  # the anchors are uint8
        spaces = embed_orbits(
            pl_module.encoder, pl_module.projector, orbits, self.batch_size, normalise
        )
        step = trainer.global_step
        self.steps.append(step)
        metrics = {}
        for space, (anchors, views) in spaces.items():  # (A, d), (A, K, d)
            values, log_spectrum = spectrum.view_metrics(views, *self.alpha_range)
            for name, value in values.items():  # rankme, alpha, lidar
                metrics[names.spectrum_metric(name, space)] = value
            self.history[space].append(log_spectrum)
            if self._n_classes >= 2 and self._all_classes(orbits.labels):
                metrics[names.class_metric("nc1", space)] = nc1(
                    anchors, orbits.labels, self._n_classes
                )
                for name, value in nc2(anchors, orbits.labels, self._n_classes).items():
                    metrics[names.class_metric(name, space)] = value
        if self._n_classes >= 2 and self._class_tension is not False:
            metrics |= self._class_tensions(trainer, spaces, orbits.labels)
        for name, value in metrics.items():
            pl_module.log(name, value, rank_zero_only=True)
        title = f"normalised log singular values of {len(orbits.labels)} x {self.n_views} views"
        fig = plots.spectrum_history(self.steps, self.history, title)
        save_plot(trainer, fig, f"spectrum_step{step:06d}.png", "spectrum/collapse_plot")

    def _all_classes(self, labels: Tensor) -> bool:
        return len(labels.unique()) == self._n_classes

    def _class_tensions(self, trainer, spaces, labels: Tensor) -> dict[str, float]:
        """The class tension matrices, their rank correlations, and their heatmap."""
        _, views = spaces["projector"]
        result = class_tension(
            views[:, 0], views[:, 1], labels, self._n_classes, self.temperature, self.t_min
        )
        predicted = leave_one_out_predict(
            spaces["encoder"][0], labels, self._n_classes, self.knn_k, self.knn_temperature
        )
        confusion = confusion_matrix(predicted, labels, self._n_classes)
        metrics = {
            names.class_metric("tension_confusion_spearman"): rank_correlation(
                result.tension, confusion
            ),
            names.class_metric("share_confusion_spearman"): rank_correlation(
                result.share, confusion
            ),
        }
        anchors_axes = ("anchor's class c", "negative's class c'")
        panels = {
            "mean ORL tension T on the negatives (projector)": (result.tension, anchors_axes),
            "softmax share of the negatives (ORL logits)": (result.share, anchors_axes),
            "leave-one-out kNN confusion (encoder)": (confusion, ("true class", "predicted class")),
        }
        if self._image_cosines is not None:  # class labels on the training images
            metrics[names.class_metric("tension_image_cos_spearman")] = rank_correlation(
                result.tension, self._image_cosines
            )
            panels["cosine of the class-mean training images"] = (
                self._image_cosines,
                ("class c", "class c'"),
            )
        step = trainer.global_step
        rho = metrics[names.class_metric("tension_confusion_spearman")]
        title = (
            f"Between classes: {len(labels)} test images x 2 views, step {step}.  "
            f"Spearman(tension, kNN confusion) over c ≠ c' = {rho:.2f}.  "
            "Colours span the off-diagonal entries; the outlined diagonal saturates."
        )
        fig = plots.class_matrices(panels, title)
        save_plot(trainer, fig, f"class_tension_step{step:06d}.png", "classes/tension_plot")
        return metrics

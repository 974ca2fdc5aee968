"""The LightningModule: views -> encoder -> projector -> loss, with a kNN monitor."""

import logging
import math
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from orbitcl.callbacks import names
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.losses.base import Loss
from orbitcl.metrics.knn import knn_accuracy, whole_loader_split
from orbitcl.parallel.collectives import any_rank
from orbitcl.training.nonfinite import NonFiniteLossError, NonFiniteRecord
from orbitcl.training.objectives import gathering, needs_of, objective_for, pairs_of
from orbitcl.training.optimizers import check_lr_scaling, scaled_lr
from orbitcl.training.projection import project

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class ContrastiveModule(L.LightningModule):
    """Trains `encoder` and `projector` with a pairwise contrastive `loss`.

    Every component arrives built (Hydra's `_target_`); the module reads no config. With V > 2
    views per image the loss is averaged over all V*(V-1)/2 pairs of views. What a loss needs
    beyond the views (class labels for SupCon, momentum keys for MoCo, a predictor for SimSiam,
    both for BYOL) it declares (`orbitcl.losses.base.Needs`); `orbitcl.training.objectives`
    serves it, chosen once here. `predictor` (built from `model.predictor`) is given when the
    loss needs one; its parameters are the module's (optimiser, state dict).

    `aux` adds weighted auxiliary terms, `{name: (weight, loss)}`: the objective is
    `loss + sum(weight * aux_loss)` on every pair of views. `train/loss` logs the objective;
    with auxiliary terms, `train/main_loss` logs the main loss and `train/aux/<name>` each term,
    unweighted. A loss that needs the training-set size (VRN) is given the number of training
    images when training starts. For an InfoNCE-type main loss (``Loss.candidates``: K + 1 for
    the global batch), `train/mi_lower_bound` logs ``log(K + 1) - main loss`` in nats: a lower
    bound on the mutual information of two views (``docs/geometry.md``), not an estimate.

    `optimizer` is called with the parameters; `scheduler`, if given, is called with the optimizer
    and `total_steps` (the trainer's estimate) and is stepped after every optimisation step.
    `lr_scaling="linear"` scales the optimizer's learning rate by the global batch / 256 (the
    datamodule's `batch_size` x processes x accumulated batches). Validation expects two loaders,
    [bank, queries], and logs the weighted kNN accuracy of the queries against the bank on
    encoder features; a datamodule without labels serves [queries] alone, and no kNN is run.
    Training steps return the step's detached encoder features and projections, validation
    steps the encoder features, for the callbacks (e.g. the online linear classifier).

    Under DDP (world size > 1) the loss gathers the embeddings of all ranks (its
    `gather_distributed`, switched on in `setup`), so training equals one-process training on the
    global batch; the kNN runs on the features of all ranks, each sample once.
    """

    knn_needs = DataNeeds(class_labels=True)  # the kNN monitor's: a labelled bank and queries

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        knn_k: int = 200,
        knn_temperature: float = 0.1,
        on_nonfinite_loss: str = "stop",
        aux: dict[str, tuple[float, nn.Module]] | None = None,
        lr_scaling: str = "none",
        predictor: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.loss = loss
        # The predictor, if the loss needs one, lives in the objective (objective.predictor.*).
        self.objective = objective_for(loss, encoder, projector, predictor=predictor)
        # K + 1 for a batch of N images, or None: decided once, not asked at every step.
        self._candidates = loss.candidates if isinstance(loss, Loss) else lambda n_images: None
        aux = aux or {}  # the weights were checked where they were built (training.fit)
        self.aux_losses = nn.ModuleDict({name: term for name, (_, term) in aux.items()})
        self.aux_weights = {name: float(weight) for name, (weight, _) in aux.items()}
        self.aux_objectives = nn.ModuleDict(
            {
                name: objective_for(term, encoder, projector, f"aux.{name}")
                for name, term in self.aux_losses.items()
            }
        )
        losses = [loss, *self.aux_losses.values()]
        self._gathering = gathering(losses)  # switched on under DDP (setup)
        self._sized = [term for term in losses if needs_of(term).train_set_size]
        self._counted = [term for term in losses if needs_of(term).class_count]
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        check_lr_scaling(lr_scaling)
        self.lr_scaling = lr_scaling
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        if on_nonfinite_loss not in ("stop", "skip"):
            raise ValueError(
                f"on_nonfinite_loss={on_nonfinite_loss!r} is invalid: must be 'stop' or 'skip'"
            )
        self.on_nonfinite_loss = on_nonfinite_loss
        self._nonfinite = NonFiniteRecord()  # the non-finite steps, on the device
        self._bad: torch.Tensor | None = None  # () bool: the current step's agreed flag
        self._pairs: list[tuple[int, int]] = []
        self.last_validated_step: int | None = None  # global step of the latest validation
        self._val_outputs: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def setup(self, stage: str) -> None:
        # Without gathering, each rank would contrast its anchors with its own n images only:
        # fewer negatives, and not the loss of the global batch.
        if self.trainer.world_size > 1:
            for loss in self._gathering:
                loss.gather_distributed = True

    @property
    def schedules_over_run(self) -> tuple[str, ...]:
        """What in this run is a function of its length K (the trainer's
        estimated_stepping_batches), named for a user: a resume with another K would change it
        mid-run (orbitcl.training.resume.ConfigSnapshot refuses that)."""
        schedules = []
        if self.scheduler_factory is not None:  # called with total_steps=K
            schedules.append("the learning-rate schedule (optim.scheduler)")
        objectives = [self.objective, *self.aux_objectives.values()]
        if any(objective.schedule_over_run for objective in objectives):
            schedules.append("the momentum encoder's cosine momentum (loss.momentum_schedule)")
        return tuple(schedules)

    @property
    def predictor(self) -> nn.Module | None:
        """The predictor head (SimSiam, BYOL), or None."""
        return self.objective.predictor

    def on_train_start(self) -> None:
        # The K of schedules over the run's optimiser steps (BYOL's EMA rate): trainer.max_steps,
        # else the epochs' steps (inf for endless training).
        self.objective.train_started(self.trainer.estimated_stepping_batches)
        # Losses whose default depends on the training set (VRN's target, -1/(k-1)) are told its
        # size k: the whole split, also under DDP, where the sampler shards it but the dataset is
        # whole.
        for loss in self._sized:
            loss.train_set_size = len(self.trainer.train_dataloader.dataset)
        # Losses that build weights by class (SupCon, Soft SupCon) are told the class count, so
        # that they take the labels as class indices instead of finding their distinct values
        # (torch.unique: a host sync per step). A count set in the config wins.
        num_classes = getattr(self.trainer.datamodule, "num_classes", 0)
        for loss in self._counted:
            if loss.num_classes is None and num_classes:
                loss.num_classes = num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder features of a batch of images: (B, C, H, W) -> (B, encoder.out_dim)."""
        return self.encoder(images)

    def training_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor | list]:
        """Returns the loss and, for callbacks, the detached features and projections of each
        view."""
        views, labels = batch  # V tensors of (B, C, H, W), (B,)
        self._pairs = pairs_of(len(views))
        # One pass over all views, so BatchNorm normalises with the statistics of the whole batch.
        features = self.encoder(torch.cat(views))  # (V*B, e)
        zs = project(self.projector, features).chunk(len(views))  # V x (B, d)
        main = self.objective(self.loss, zs, views, labels)  # (P,): one per pair of views
        aux = {
            name: self.aux_objectives[name](term, zs, views, labels)
            for name, term in self.aux_losses.items()
        }  # each (P,)
        terms = main + sum(self.aux_weights[name] * values for name, values in aux.items())
        # Every rank agrees on the flag before anything is decided: a rank-local NaN (MoCo's
        # queries, VRN's rows, an auxiliary term) must not leave the others waiting in DDP's
        # gradient all-reduce. Decided on the device: a non-finite step's loss is replaced by 0
        # and its gradients are zeroed (on_before_optimizer_step), so it changes no weight
        # through its gradient, and the host reads the count only at log steps.
        local = ~torch.isfinite(terms).all()  # () bool, this rank's
        bad = any_rank(local)  # () bool, the same on every rank
        where = (self.global_step, self.current_epoch, batch_idx)
        self._nonfinite.record(local, bad, terms, zs, *where)
        self._bad = bad
        loss = torch.where(bad, torch.zeros_like(terms[0]), terms.mean())  # keeps DDP's graph
        self.objective.step_succeeded(self.loss)
        if self._logging_step():  # log_every_n_steps: no per-step all-reduce or .item()
            self._log_step(loss, main, aux, len(labels))
        else:
            self._hide_step_logs()
        return {
            "loss": loss,
            "finite": ~bad,  # () bool: the callbacks train on this step's outputs only if true
            "projections": [z.detach() for z in zs],
            "features": list(features.detach().chunk(len(views))),  # V x (B, e)
        }

    def _logging_step(self) -> bool:
        """Whether Lightning writes this step's logs (every `log_every_n_steps`): logging only
        then spares the other steps the all-reduce of sync_dist and the progress bar's .item()."""
        return self.trainer._logger_connector.should_update_logs  # Lightning's own rule

    def _hide_step_logs(self) -> None:
        """Lightning keeps a log step's values in its results until the epoch ends, and after
        every step converts those shown in the progress bar to floats (an .item() each: a sync
        on CUDA). Marked as reset, they are skipped until the next log step logs them anew; the
        bar shows the floats it read at the log step (Lightning's cache), and callback_metrics
        keeps the values too. Values logged on_step only (the training step's) need no other
        reset: a new log overwrites them."""
        for result in self.trainer._results.values():
            if result.meta.fx == "training_step" and not result.meta.on_epoch:
                result.has_reset = True

    def _log_step(self, loss, main, aux, n_images: int) -> None:
        # sync_dist: under DDP the mean of the ranks' losses, which is the global batch's loss.
        self.log(names.TRAIN_LOSS, loss, prog_bar=True, sync_dist=True)
        candidates = self._candidates(n_images * self.trainer.world_size)  # global batch
        if candidates is not None:
            bound = math.log(candidates) - main.mean()
            self.log(names.MI_LOWER_BOUND, bound, sync_dist=True)
        if aux:
            self.log("train/main_loss", main.mean(), sync_dist=True)
            for name, values in aux.items():
                self.log(f"train/aux/{name}", values.mean(), sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        if self.on_nonfinite_loss == "skip":
            self.log("train/skipped_batches", self._nonfinite.count.float())

    @property
    def skipped_batches(self) -> int:
        """Batches skipped for a non-finite loss so far, every rank's the same (a host sync)."""
        return self._nonfinite.seen()

    def on_before_optimizer_step(self, optimizer) -> None:
        # A non-finite step's gradients are zeroed on the device, on every rank alike (the flag
        # is agreed, and DDP's all-reduce spread any NaN to every rank's gradients): 0 * NaN is
        # NaN, so masked_fill, not a product.
        if self._bad is None:
            return
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.grad.masked_fill_(self._bad, 0.0)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # `stop` reads the agreed count on the host at log steps and at the epoch's end only, so
        # the other steps need no sync; the steps in between were neutralised on the device.
        if self.on_nonfinite_loss == "stop" and self._logging_step():
            self._stop_if_nonfinite()

    def on_train_epoch_end(self) -> None:
        if self.on_nonfinite_loss == "stop":
            self._stop_if_nonfinite()

    def _stop_if_nonfinite(self) -> None:
        if self._nonfinite.seen() == 0:
            return
        # The diagnosis is printed once, by the first rank that saw a non-finite loss itself.
        here = torch.zeros(self.trainer.world_size, dtype=torch.bool, device=self.device)
        here[self.global_rank] = self._nonfinite.seen_here()
        first = int(any_rank(here).to(torch.int8).argmax())
        if self.global_rank == first:
            message = self._nonfinite.message(self.loss.__class__.__name__, self._pairs)
            raise NonFiniteLossError(
                message + ". Stopped on every rank; its gradients were zeroed, so no weight was "
                "updated from them. Lower the learning rate, or set on_nonfinite_loss=skip to "
                "skip such batches."
            )
        raise NonFiniteLossError(
            f"Non-finite loss: stopped on every rank (diagnosis on rank {first})"
        )

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)  # runs training_step, backward and the step
        # global_step counts the completed steps: during this hook, the index of this one.
        self.objective.optimizer_stepped(self.encoder, self.projector, self.global_step)

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = {}

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Stores and returns the encoder features (B, e) of a batch of a validation loader."""
        images, labels = batch
        features = self(images)
        self._val_outputs.setdefault(dataloader_idx, []).append((features, labels))
        return features

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.last_validated_step = self.global_step
        if len(self._val_outputs) != 2:  # [queries] alone: no labels to vote with
            self._val_outputs = {}
            return
        bank, bank_labels = self._collected(0)
        queries, query_labels = self._collected(1)
        accuracy = knn_accuracy(
            queries, query_labels, bank, bank_labels, k=self.knn_k, temperature=self.knn_temperature
        )
        # Every rank computes it from the same gathered features; sync_dist makes the logged value
        # identical on all ranks even if their kNN rounds differently.
        self.log(names.KNN_ACC, accuracy, prog_bar=True, sync_dist=True)
        self._val_outputs = {}

    def _collected(self, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (M, D) and labels (M,) of the whole split of loader `dataloader_idx`."""
        features, labels = zip(*self._val_outputs[dataloader_idx], strict=True)
        loader = self.trainer.val_dataloaders[dataloader_idx]
        return whole_loader_split(torch.cat(features), torch.cat(labels), loader)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.lr_scaling != "none":
            trainer = self.trainer
            # Every process of every node, and the batches accumulated into one step.
            global_batch = (
                trainer.datamodule.batch_size * trainer.world_size * trainer.accumulate_grad_batches
            )
            for group in optimizer.param_groups:
                group["lr"] = scaled_lr(group["lr"], global_batch, self.lr_scaling)
            rank_zero_info(
                f"lr_scaling={self.lr_scaling}: global batch {global_batch}, "
                f"lr {optimizer.param_groups[0]['lr']:g}"
            )
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

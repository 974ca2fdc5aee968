"""The LightningModule: views -> encoder -> projector -> loss, with a kNN monitor."""

import logging
from collections.abc import Callable
from itertools import combinations

import lightning as L
import torch
from torch import nn

from orbitcl.knn import knn_accuracy
from orbitcl.momentum import MomentumEncoder
from orbitcl.nonfinite import NonFiniteLossError, embedding_report

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class ContrastiveModule(L.LightningModule):
    """Trains `encoder` and `projector` with a pairwise contrastive `loss`.

    Every component arrives built (Hydra's `_target_`); the module reads no config. With V > 2
    views per image the loss is averaged over all V*(V-1)/2 pairs of views. A loss with
    `uses_labels` (SupCon) also receives the batch's class labels; one with `uses_keys` (MoCo)
    also receives the keys of the same views from a momentum encoder (`orbitcl.momentum`, EMA
    copies of encoder and projector), and enqueues them after the loss has read its queue.

    `aux` adds weighted auxiliary terms, `{name: (weight, loss)}`: the objective is
    `loss + sum(weight * aux_loss)` on every pair of views. `train/loss` logs the objective;
    with auxiliary terms, `train/main_loss` logs the main loss and `train/aux/<name>` each term,
    unweighted. A loss with a `train_set_size` attribute (VRN) is given the number of training
    images when training starts.

    `optimizer` is called with the parameters; `scheduler`, if given, is called with the optimizer
    and `total_steps` (the trainer's estimate) and is stepped after every optimisation step.
    Validation expects two loaders, [bank, queries], and logs the weighted kNN accuracy of the
    queries against the bank on encoder features.

    Under DDP (world size > 1) the loss gathers the embeddings of all ranks (its
    `gather_distributed`, switched on in `setup`), so training equals one-process training on the
    global batch; the kNN runs on the features of all ranks, each sample once.
    """

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
    ):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.loss = loss
        # A loss with `uses_keys` (MoCo) contrasts queries with the keys of EMA copies of encoder
        # and projector, updated after every optimiser step.
        self.momentum_encoder = (
            MomentumEncoder(encoder, projector, loss.momentum)
            if getattr(loss, "uses_keys", False)
            else None
        )
        aux = aux or {}
        for name, (weight, _) in aux.items():
            if not weight >= 0:
                raise ValueError(f"aux.{name}.weight={weight} is invalid: must be >= 0")
        self.aux_losses = nn.ModuleDict({name: term for name, (_, term) in aux.items()})
        self.aux_weights = {name: float(weight) for name, (weight, _) in aux.items()}
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        if on_nonfinite_loss not in ("stop", "skip"):
            raise ValueError(
                f"on_nonfinite_loss={on_nonfinite_loss!r} is invalid: must be 'stop' or 'skip'"
            )
        self.on_nonfinite_loss = on_nonfinite_loss
        self.skipped_batches = 0  # batches skipped for a non-finite loss
        self.last_knn_step: int | None = None  # global step of the latest kNN evaluation
        self._val_outputs: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def setup(self, stage: str) -> None:
        # Without gathering, each rank would contrast its anchors with its own n images only:
        # fewer negatives, and not the loss of the global batch. Any loss with the attribute
        # (orbitcl's, lightly's) is switched on.
        if self.trainer.world_size > 1:
            for loss in [self.loss, *self.aux_losses.values()]:
                if hasattr(loss, "gather_distributed"):
                    loss.gather_distributed = True

    def on_train_start(self) -> None:
        # Losses whose default depends on the training set (VRN's target, -1/(k-1)) are told its
        # size k: the whole split, also under DDP, where the sampler shards it but the dataset is
        # whole.
        size = len(self.trainer.train_dataloader.dataset)
        for loss in [self.loss, *self.aux_losses.values()]:
            if hasattr(loss, "train_set_size"):
                loss.train_set_size = size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder features of a batch of images: (B, C, H, W) -> (B, encoder.out_dim)."""
        return self.encoder(images)

    def training_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor | list]:
        """Returns the loss and, for callbacks, the detached projections of each view."""
        views, labels = batch  # V tensors of (B, C, H, W), (B,)
        # One pass over all views, so BatchNorm normalises with the statistics of the whole batch.
        z = self.projector(self.encoder(torch.cat(views)))  # (V*B, d)
        zs = z.chunk(len(views))  # V x (B, d)
        pairs = list(combinations(range(len(zs)), 2))
        if self.momentum_encoder is None:
            main = torch.stack([self._call(self.loss, zs[a], zs[b], labels) for a, b in pairs])
        else:  # MoCo: the keys of the same views, one no-grad pass
            keys = self.momentum_encoder(torch.cat(views)).chunk(len(views))  # V x (B, d)
            main = torch.stack([self.loss(zs[a], zs[b], keys[a], keys[b]) for a, b in pairs])
        aux = {
            name: torch.stack([self._call(term, zs[a], zs[b], labels) for a, b in pairs])
            for name, term in self.aux_losses.items()
        }  # each (V(V-1)/2,), like main
        terms = main + sum(self.aux_weights[name] * values for name, values in aux.items())
        loss = terms.mean()
        if not torch.isfinite(loss):
            return self._non_finite(terms, pairs, zs, batch_idx)
        if self.momentum_encoder is not None:
            self.loss.enqueue(keys)  # the loss has read the queue (into a copy): safe in place
        # sync_dist: under DDP the mean of the ranks' losses, which is the global batch's loss.
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        if aux:
            self.log("train/main_loss", main.mean(), sync_dist=True)
            for name, values in aux.items():
                self.log(f"train/aux/{name}", values.mean(), sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return {"loss": loss, "projections": [z.detach() for z in zs]}

    @staticmethod
    def _call(loss: nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, labels: torch.Tensor):
        if getattr(loss, "uses_labels", False):
            return loss(z_a, z_b, labels)
        return loss(z_a, z_b)

    def _non_finite(self, terms, pairs, zs, batch_idx: int) -> None:
        """Stops before the optimiser step with a diagnosis, or skips the batch (returns None,
        which makes Lightning skip backward and step) and counts it."""
        bad = [i for i, term in enumerate(terms) if not torch.isfinite(term)]
        a, b = pairs[bad[0]]
        where = f"step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        message = (
            f"Non-finite loss at {where}: {self.loss.__class__.__name__} on views ({a}, {b}) "
            f"= {terms[bad[0]].item()}; embeddings: {embedding_report(zs[a], zs[b])}."
        )
        if self.on_nonfinite_loss == "stop":
            raise NonFiniteLossError(
                message + " The weights were not updated and the last checkpoint is kept. "
                "Lower the learning rate, or set on_nonfinite_loss=skip to skip such batches."
            )
        self.skipped_batches += 1
        log.warning("%s Skipped (%d so far).", message, self.skipped_batches)
        self.log("train/skipped_batches", float(self.skipped_batches))
        return None

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)  # runs training_step, backward and the step
        if self.momentum_encoder is not None:  # MoCo: theta_k <- m theta_k + (1 - m) theta_q
            self.momentum_encoder.update(self.encoder, self.projector)

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = {}

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        self._val_outputs.setdefault(dataloader_idx, []).append((self(images), labels))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or len(self._val_outputs) != 2:
            return
        bank, bank_labels = self._collected(0)
        queries, query_labels = self._collected(1)
        accuracy = knn_accuracy(
            queries, query_labels, bank, bank_labels, k=self.knn_k, temperature=self.knn_temperature
        )
        # Every rank computes it from the same gathered features; sync_dist makes the logged value
        # identical on all ranks even if their kNN rounds differently.
        self.log("val/knn_acc", accuracy, prog_bar=True, sync_dist=True)
        self.last_knn_step = self.global_step
        self._val_outputs = {}

    def _collected(self, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (M, D) and labels (M,) of the whole split of loader `dataloader_idx`."""
        features, labels = zip(*self._val_outputs[dataloader_idx], strict=True)
        features, labels = torch.cat(features), torch.cat(labels)
        if self.trainer.world_size == 1:
            return features, labels
        # Under DDP, Lightning's DistributedSampler gives each rank an equal share, padded with
        # repeated samples. Every rank gathers all shares with the sample indices its sampler
        # yielded (in loader order), drops the repeats and puts the samples back in dataset
        # order: the bank and queries of one process, on every rank.
        loader = self.trainer.val_dataloaders[dataloader_idx]
        indices = torch.as_tensor(list(loader.sampler), device=features.device)  # (m,)
        indices, features, labels = (
            self.all_gather(x).flatten(0, 1) for x in (indices, features, labels)
        )  # (W m,), (W m, D), (W m,)
        size = len(loader.dataset)  # M
        first = torch.full((size,), len(indices), device=indices.device)
        first.scatter_reduce_(0, indices, torch.arange(len(indices), device=indices.device), "amin")
        return features[first], labels[first]  # first occurrence of each sample, dataset order

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

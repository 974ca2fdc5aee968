"""Online linear evaluation: a linear classifier on detached encoder features, trained beside the
contrastive objective and measured at every validation (`val/linear_acc`)."""

import functools
import logging
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orbitcl.callbacks import names
from orbitcl.callbacks.requirements import DataNeeds
from orbitcl.metrics.knn import whole_loader_split

log = logging.getLogger(__name__)

QUERIES = 1  # the test split: the second of the datamodule's validation loaders [bank, queries]


class OnlineLinearClassifier(L.Callback):
    """A linear classifier, encoder features -> classes, trained after every training step on
    that step's encoder features of all views (each with its image's label), detached: no
    gradient reaches the encoder, and the contrastive objective never sees it. It has its own
    optimiser, `optimizer(parameters)` (default SGD, lr 0.1, momentum 0.9), not Lightning's: no
    learning-rate scaling or schedule of the model applies to it. Its weights start at zero.

    At the end of every validation it classifies the encoder features of the test split (the
    validation queries, no augmentation, encoder in eval mode) and logs the top-1 accuracy as
    `val/linear_acc` (SimCLR's and solo-learn's online linear evaluation).

    Images labelled -1 (no label: STL-10's unlabeled split) do not train it; until it has seen a
    labelled image it logs nothing. With a datamodule without classes (`num_classes == 0`, a flat
    image folder) or whose training labels are continuous (rotated MNIST's angles) it does
    nothing.

    Exact under DDP: each rank's gradient of the summed cross-entropy of its images is summed over
    the ranks and divided by their total count, so every rank takes the step one process takes
    on the global batch and the classifiers stay identical; the test split's predictions are
    gathered, each image once, so `val/linear_acc` is one process's accuracy on the whole split.
    Its weights and optimiser state are saved in checkpoints and restored on resume.
    """

    needs = DataNeeds(class_labels=True, training_class_labels=True, test_split=True)

    def __init__(self, optimizer: Callable[..., torch.optim.Optimizer] | None = None):
        self.optimizer_factory = optimizer or functools.partial(
            torch.optim.SGD, lr=0.1, momentum=0.9
        )
        self.classifier: nn.Linear | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.labelled_seen = 0  # labelled images it was trained on, all ranks
        self._restored: dict | None = None
        self._said_untrained = False
        self._predictions: list[tuple[Tensor, Tensor]] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        num_classes = datamodule.num_classes
        if datamodule.continuous_labels is not None:  # its training labels are not classes
            if not self._said_untrained and trainer.is_global_zero:
                log.info(
                    "%s not logged: dataset.%s", names.LINEAR_ACC, datamodule.continuous_labels
                )
            self._said_untrained = True  # setup runs again for a final validation
            return
        if self.classifier is None and num_classes:
            # Zeros, the problem being convex; skip_init draws no random weights, which would
            # move the global RNG and so change the model's training.
            self.classifier = nn.utils.skip_init(nn.Linear, pl_module.encoder.out_dim, num_classes)
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, once the model is on its device (setup and a resume's load_state_dict come
        # earlier), so that the optimiser's state is created or restored on that device too.
        if self.classifier is None:
            return
        self.classifier.to(pl_module.device)
        if self.optimizer is None:
            self.optimizer = self.optimizer_factory(self.classifier.parameters())
        if self._restored is not None:
            self.classifier.load_state_dict(self._restored["classifier"])
            self.optimizer.load_state_dict(self._restored["optimizer"])
            self.labelled_seen = self._restored["labelled_seen"]
            self._restored = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.classifier is None:
            return
        views = outputs["features"]  # V x (B, e), detached
        labels = batch[1].repeat(len(views))  # (V*B,): each view has its image's label
        # A non-finite step (the flag every rank agreed on) trains it on no image: labels -1.
        labels = labels.masked_fill(~outputs["finite"], -1)
        reduce = functools.partial(trainer.strategy.reduce, reduce_op="sum")
        self.train_step(torch.cat(views), labels, reduce)

    def train_step(
        self, features: Tensor, labels: Tensor, all_sum: Callable[[Tensor], Tensor]
    ) -> None:
        """One optimiser step on features (n, e), labels (n,) (-1: no label, trains nothing);
        `all_sum` sums a tensor over the ranks (the identity in one process).

        No host sync: unlabelled rows are zeroed and weighted 0 rather than indexed out (a
        boolean index waits for the device), and a step with no labelled image anywhere takes
        a zero gradient rather than being skipped on the host."""
        labelled = labels >= 0  # (n,)
        features = features.float().masked_fill(~labelled[:, None], 0.0)  # NaN-free
        with torch.enable_grad():
            logits = self.classifier(features)
            losses = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")  # (n,)
            loss = torch.where(labelled, losses, 0.0).sum()
            self.optimizer.zero_grad()
            loss.backward()
        parameters = list(self.classifier.parameters())
        # One collective per step: the ranks' summed gradients and their count of labelled images.
        summed = all_sum(
            torch.cat(
                [p.grad.flatten() for p in parameters]
                + [labelled.sum().reshape(1).to(parameters[0].grad.dtype)]
            )
        )
        count = summed[-1]  # () on the device
        gradients = summed[:-1].split([p.numel() for p in parameters])
        for parameter, gradient in zip(parameters, gradients, strict=True):
            # The global batch's mean; 0 when no rank had a labelled image.
            parameter.grad.copy_(gradient.view_as(parameter) / count.clamp(min=1))
        self.optimizer.step()
        self.labelled_seen = self.labelled_seen + count.to(torch.int64)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._predictions = []

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.classifier is not None and dataloader_idx == QUERIES:
            self._predictions.append((self.classifier(outputs.float()).argmax(1), batch[1]))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.classifier is None or trainer.sanity_checking or not self._predictions:
            return
        predictions, labels = (torch.cat(x) for x in zip(*self._predictions, strict=True))
        self._predictions = []
        loader = trainer.val_dataloaders[QUERIES]
        predictions, labels = whole_loader_split(predictions, labels, loader)  # (M,), (M,): all
        if self.labelled_seen == 0:
            if not self._said_untrained and trainer.is_global_zero:
                log.info("%s not logged: no labelled training image yet", names.LINEAR_ACC)
            self._said_untrained = True
            return
        accuracy = (predictions == labels).float().mean()
        pl_module.log(names.LINEAR_ACC, accuracy, prog_bar=True, sync_dist=True)

    def state_dict(self) -> dict:
        if self.optimizer is None:
            return {}
        return {
            "classifier": self.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "labelled_seen": int(self.labelled_seen),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = state_dict or None  # applied in on_fit_start, on the model's device

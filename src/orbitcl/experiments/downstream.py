"""Downstream accuracy of a trained run's frozen encoder: a linear probe and the weighted kNN
that training monitors, on the train split (bank) and the test split (queries), both with the
eval transform (what `python -m orbitcl.evaluate` and `orbitcl.analyze` report)."""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from orbitcl.experiments.runs import TrainedRun
from orbitcl.metrics.knn import knn_accuracy
from orbitcl.metrics.orbits import embed_batches
from orbitcl.metrics.probe import linear_probe_accuracy


def encode(
    encoder: nn.Module,
    loader: DataLoader,
    projector: nn.Module | None = None,
    normalise: Callable[[Tensor], Tensor] | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Features of every `(images, labels)` batch, on CPU: {"encoder": (N, e)} and, given a
    `projector`, {"projector": (N, d)}; and the labels (N,) (`metrics.orbits.embed_batches`).
    `normalise`: the transform of uint8 batches, applied on the encoder's device (a datamodule's
    eval batches are uint8: `MultiViewDataModule.normalise`)."""
    labels = []

    def images():
        for batch, targets in loader:
            labels.append(targets)
            yield batch

    features, projections = embed_batches(encoder, projector, images(), normalise)
    spaces = {"encoder": features} | ({} if projections is None else {"projector": projections})
    return spaces, torch.cat(labels)


def encoded_splits(run: TrainedRun, projector: bool = False) -> tuple[tuple, tuple]:
    """((features, labels) of the bank, the same of the queries): the train and test splits
    with the eval transform, as in training's kNN monitor; see `encode`."""
    if not run.datamodule.num_classes:
        raise ValueError(
            f"{run.name} was trained on images without class labels "
            f"(dataset.{run.datamodule.missing_labels}): kNN and a linear probe need them"
        )
    run.datamodule.setup()
    bank, queries = run.datamodule.val_dataloader()  # train split, test split; eval transform
    head = run.projector if projector else None
    normalise = run.datamodule.normalise
    return encode(run.encoder, bank, head, normalise), encode(run.encoder, queries, head, normalise)


def downstream_accuracy(run: TrainedRun, knn_k: int | None = None) -> dict[str, float]:
    """{"probe_top1", "knn_top1"} on the run's test split; kNN with the run's `eval` settings
    (k = `knn_k` if given)."""
    return accuracies(run, *encoded_splits(run), knn_k)


def accuracies(
    run: TrainedRun, bank: tuple, queries: tuple, k=None, temperature=None, metric="cosine"
) -> dict[str, float]:
    """{"probe_top1", "knn_top1"} on encoder features; kNN with the run's `eval` settings unless
    `k` and `temperature` are given."""
    (train_x, train_y), (test_x, test_y) = bank, queries
    train_h, test_h = train_x["encoder"], test_x["encoder"]
    knn = {
        "k": k or run.cfg.eval.knn_k,
        "temperature": temperature or run.cfg.eval.knn_temperature,
        "metric": metric,
    }
    return {
        # On the run's device (`orbitcl.evaluate --device`), float32 there unless it is the CPU.
        "probe_top1": linear_probe_accuracy(
            train_h, train_y, test_h, test_y, device=next(run.encoder.parameters()).device
        ),
        "knn_top1": knn_accuracy(test_h, test_y, train_h, train_y, **knn),
    }

"""Downstream accuracy of a trained run's frozen encoder: `python -m orbitcl.evaluate CKPT`.

Encodes the train split (no augmentation) and the test split with the encoder (not the
projector: SimCLR's representation is the encoder's), then reports the test top-1 of a linear
probe fitted on the train features, next to the weighted kNN top-1 that training monitors.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from orbitcl.experiments.runs import TrainedRun, load_run
from orbitcl.experiments.trust import UntrustedTargetError, add_allow_target
from orbitcl.metrics.knn import knn_accuracy
from orbitcl.metrics.probe import linear_probe_accuracy


@torch.no_grad()
def encode(encoder: nn.Module, loader: DataLoader) -> tuple[Tensor, Tensor]:
    """Encoder features (N, e) and labels (N,) of every `(images, labels)` batch, on CPU."""
    device = next(encoder.parameters()).device
    features, labels = [], []
    for images, targets in loader:
        features.append(encoder(images.to(device)).float().cpu())
        labels.append(targets)
    return torch.cat(features), torch.cat(labels)


def downstream_accuracy(run: TrainedRun, knn_k: int | None = None) -> dict[str, float]:
    """{"probe_top1", "knn_top1"} on the run's test split; kNN with the run's `eval` settings
    (k = `knn_k` if given)."""
    run.datamodule.setup()
    bank, queries = run.datamodule.val_dataloader()  # train split, test split; eval transform
    train_x, train_y = encode(run.encoder, bank)
    test_x, test_y = encode(run.encoder, queries)
    knn = knn_accuracy(
        test_x,
        test_y,
        train_x,
        train_y,
        k=knn_k or run.cfg.eval.knn_k,
        temperature=run.cfg.eval.knn_temperature,
    )
    return {"probe_top1": linear_probe_accuracy(train_x, train_y, test_x, test_y), "knn_top1": knn}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orbitcl.evaluate", description=__doc__)
    parser.add_argument("checkpoints", nargs="+", help=".ckpt files or run directories")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--knn-k", type=int, default=None, help="default: the run's eval.knn_k")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_allow_target(parser)
    args = parser.parse_args(argv)

    results = []
    for path in args.checkpoints:
        try:
            run = load_run(path, args.device, args.allow_target)
        except (FileNotFoundError, UntrustedTargetError) as err:
            print(f"orbitcl.evaluate: error: {err}", file=sys.stderr)
            return 2
        accuracy = downstream_accuracy(run, args.knn_k)
        k = args.knn_k or run.cfg.eval.knn_k
        print(
            f"{run.name} ({run.checkpoint}, step {run.global_step}): "
            f"linear probe top-1 {accuracy['probe_top1']:.4f}, "
            f"kNN ({k}-NN) top-1 {accuracy['knn_top1']:.4f}"
        )
        results.append({"name": run.name, "checkpoint": str(run.checkpoint), **accuracy})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

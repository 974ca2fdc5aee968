"""Downstream accuracy of a trained run's frozen encoder: `python -m orbitcl.evaluate CKPT`.

Encodes the train split (no augmentation) and the test split with the encoder (not the
projector: SimCLR's representation is the encoder's), then reports the test top-1 of a linear
probe fitted on the train features, next to the weighted kNN top-1 that training monitors, and a
table of kNN top-1 over a grid: `--knn-k 10,20,200 --knn-t 0.07,0.1 --features
encoder,projector` (cosine similarity; `--knn-metric euclidean` for L2 distance).
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from orbitcl.experiments.downstream import accuracies, encoded_splits
from orbitcl.experiments.runs import load_run
from orbitcl.experiments.trust import add_allow_target
from orbitcl.metrics.knn import METRICS, knn_grid

SPACES = ("encoder", "projector")


def knn_table(grid: dict[str, dict[tuple[int, float], float]], metric: str) -> str:
    """A markdown table of `{space: {(k, temperature): top-1}}`: a row per space and k, a column
    per temperature."""
    temperatures = list(dict.fromkeys(t for cells in grid.values() for _, t in cells))
    lines = [
        f"kNN top-1 ({metric}; bank: train split, queries: test split)",
        "| features | k | " + " | ".join(f"t={t:g}" for t in temperatures) + " |",
        "| --- | ---: |" + " ---: |" * len(temperatures),
    ]
    for space, cells in grid.items():
        for k in dict.fromkeys(k for k, _ in cells):
            values = " | ".join(f"{cells[k, t]:.4f}" for t in temperatures)
            lines.append(f"| {space} | {k} | {values} |")
    return "\n".join(lines)


def _listed(kind: type, allowed: tuple | None = None):
    """An argparse type: comma-separated values of `kind` (from `allowed`, if given)."""

    def parse(text: str) -> list:
        try:
            values = [kind(x) for x in text.split(",")]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from err
        if allowed and (bad := [v for v in values if v not in allowed]):
            raise argparse.ArgumentTypeError(f"{bad} not among {', '.join(allowed)}")
        return values

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orbitcl.evaluate", description=__doc__)
    parser.add_argument("checkpoints", nargs="+", help=".ckpt files or run directories")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--knn-k", type=_listed(int), default=None, help="e.g. 10,20,200; default: eval.knn_k"
    )
    parser.add_argument(
        "--knn-t", type=_listed(float), default=None, help="default: eval.knn_temperature"
    )
    parser.add_argument(
        "--features", type=_listed(str, SPACES), default=["encoder"], help="encoder,projector"
    )
    parser.add_argument("--knn-metric", choices=METRICS, default="cosine")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_allow_target(parser)
    args = parser.parse_args(argv)

    results = []
    for path in args.checkpoints:
        try:
            run = load_run(path, args.device, args.allow_target)
            bank, queries = encoded_splits(run, projector="projector" in args.features)
            ks = args.knn_k or [run.cfg.eval.knn_k]
            temperatures = args.knn_t or [run.cfg.eval.knn_temperature]
            metric = args.knn_metric
            grid = {
                space: knn_grid(
                    queries[0][space], queries[1], bank[0][space], bank[1], ks, temperatures, metric
                )
                for space in args.features
            }
        except (FileNotFoundError, ValueError) as err:
            print(f"orbitcl.evaluate: error: {err}", file=sys.stderr)
            return 2
        accuracy = accuracies(run, bank, queries, ks[0], temperatures[0], metric)
        print(
            f"{run.name} ({run.checkpoint}, step {run.global_step}): "
            f"linear probe top-1 {accuracy['probe_top1']:.4f}, "
            f"kNN ({ks[0]}-NN, t={temperatures[0]:g}, {metric}) top-1 {accuracy['knn_top1']:.4f}"
        )
        print(knn_table(grid, metric))
        knn = [
            {"features": s, "k": k, "temperature": t, "metric": metric, "top1": acc}
            for s, cells in grid.items()
            for (k, t), acc in cells.items()
        ]
        results.append(
            {"name": run.name, "checkpoint": str(run.checkpoint), **accuracy, "knn": knn}
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

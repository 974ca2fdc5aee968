"""The write-up's figures and table for two or more trained runs, side by side:
`python -m orbitcl.analyze CKPT CKPT ... --out DIR`.

Every run is measured on the same test images and the same augmented views (drawn from `--seed`
with the first run's augmentation, exactly as the `OrbitDiagnostics` callback draws them), and
writes to DIR:

- `anchor_view_cos.png`: overlaid histograms of anchor-view cosine, projector space
  (A anchors x K views, default 200 x 10), and `anchor_view_cos_encoder.png`, encoder space;
- `umap.png`: one UMAP panel per run (cosine metric, M images x 5 views);
- `table.md` and `table.json`: orbit variance, anchor-view and pairwise cosine, alignment and
  uniformity (projector space; encoder space in the JSON), kNN and linear-probe top-1;
- `class_geometry.md`, `.json` and `.png`: each run's class geometry beside the optimum its loss
  predicts for its training class counts (`experiments.optimum_comparison`);
- in the table, RankMe, alpha-ReQ and LiDAR of the projections of the views (`metrics.spectrum`;
  the encoder's in the JSON), and with class labels `class_tension.png` and `.json`: each run's
  C x C class tension (two views of each anchor, `metrics.class_tension`) and its Spearman
  correlation with a leave-one-out kNN confusion matrix (docs/representation.md).
"""

import argparse
import logging
import sys
from pathlib import Path

import torch

from orbitcl.experiments.analysis import analyze
from orbitcl.experiments.runs import load_run
from orbitcl.experiments.trust import add_allow_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orbitcl.analyze",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", help=".ckpt files or run directories")
    parser.add_argument("--out", type=Path, required=True, help="folder for figures and tables")
    parser.add_argument("--names", nargs="+", default=None, help="one label per checkpoint")
    parser.add_argument("--anchors", type=int, default=200)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--umap-images", type=int, default=300)
    parser.add_argument("--umap-views", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimum-steps", type=int, default=2000, help="class_geometry's solve")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_allow_target(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        runs = [load_run(path, args.device, args.allow_target) for path in args.checkpoints]
        rows = analyze(
            runs,
            args.out,
            args.names,
            args.anchors,
            args.views,
            args.umap_images,
            args.umap_views,
            args.seed,
            optimum_steps=args.optimum_steps,  # by name: `downstream` comes before it
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"orbitcl.analyze: error: {err}", file=sys.stderr)
        return 2
    print((args.out / "table.md").read_text())
    print(f"figures and tables in {args.out}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

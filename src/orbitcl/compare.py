"""Two runs' representations of the same images, compared blind to rotations:
`python -m orbitcl.compare RUN_A RUN_B [--features encoder,projector]`.

Both runs embed the same fixed test images (chosen from `--seed` in RUN_A's test split, with its
eval transform: no augmentation), and for each feature space it prints the linear CKA (biased
HSIC; unbiased in its own column, Kornblith et al. 2019) and the orthogonal Procrustes distance
(`orbitcl.metrics.across_runs`). Rotating, scaling or translating one run's embeddings changes
neither: CKA 1 and Procrustes 0 say the two runs learnt the same representation up to those.
Run directories are untrusted input: they are loaded through the allow-list
(`orbitcl.experiments.trust`).
"""

import argparse
import sys

import torch

from orbitcl.experiments.runs import TrainedRun, load_run
from orbitcl.experiments.trust import add_allow_target
from orbitcl.metrics.across_runs import linear_cka, procrustes_distance
from orbitcl.metrics.orbits import embed, fixed_test_images

SPACES = ("encoder", "projector")


def compare(
    run_a: TrainedRun,
    run_b: TrainedRun,
    spaces: tuple[str, ...] = SPACES,
    n_images: int = 2000,
    seed: int = 0,
    unbiased: bool = True,
) -> tuple[dict[str, dict[str, float]], int]:
    """(space -> {"cka", "cka_unbiased" (if asked), "procrustes"} between the two runs, the
    number of images they were measured on)."""
    if run_a.cfg.dataset._target_ != run_b.cfg.dataset._target_:
        raise ValueError(
            f"{run_a.name} was trained on {run_a.cfg.dataset._target_}, {run_b.name} on "
            f"{run_b.cfg.dataset._target_}: compare runs on one dataset"
        )
    images = fixed_test_images(run_a.datamodule, n_images, seed)  # uint8
    normalise = run_a.datamodule.normalise  # RUN_A's eval transform, for both runs
    embedded = []
    for run in (run_a, run_b):
        features, projections = embed(run.encoder, run.projector, images, normalise=normalise)
        embedded.append({"encoder": features, "projector": projections})
    results = {}
    for space in spaces:
        x, y = embedded[0][space], embedded[1][space]
        row = {"cka": linear_cka(x, y)}
        if unbiased:
            row["cka_unbiased"] = linear_cka(x, y, unbiased=True)
        row["procrustes"] = procrustes_distance(x, y)
        results[space] = row
    return results, len(images)


def parse_features(text: str) -> tuple[str, ...]:
    spaces = tuple(s.strip() for s in text.split(",") if s.strip())
    if not spaces or any(s not in SPACES for s in spaces):
        raise ValueError(f"--features={text!r} is invalid: a comma list of {', '.join(SPACES)}")
    return spaces


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orbitcl.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", help="a run directory or .ckpt file")
    parser.add_argument("run_b", help="a run directory or .ckpt file")
    parser.add_argument("--features", default="encoder,projector", help="spaces to compare")
    parser.add_argument("--images", type=int, default=2000, help="fixed test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_allow_target(parser)
    args = parser.parse_args(argv)
    try:
        if args.images < 4:
            raise ValueError(f"--images={args.images} is invalid: must be >= 4")
        spaces = parse_features(args.features)
        runs = [load_run(p, args.device, args.allow_target) for p in (args.run_a, args.run_b)]
        results, n_images = compare(*runs, spaces=spaces, n_images=args.images, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        print(f"orbitcl.compare: error: {err}", file=sys.stderr)
        return 2
    print(f"{runs[0].name} ({runs[0].run_dir}) vs {runs[1].name} ({runs[1].run_dir})")
    print(f"on {n_images} fixed test images (seed {args.seed}), eval transform")
    print("| features | linear CKA | CKA (unbiased HSIC) | Procrustes distance |")
    print("| --- | ---: | ---: | ---: |")
    for space, row in results.items():
        cells = (row["cka"], row["cka_unbiased"], row["procrustes"])
        print(f"| {space} | " + " | ".join(f"{v:.6f}" for v in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time for a training run to reach a kNN accuracy: MNIST ORL to 97% by default.

By default it runs the preset `+experiment=orl_mnist_fast`; `--preset none` runs the library's
defaults (`loss=orl dataset=mnist`, 3 epochs) instead.

Runs the real command line (`python -m orbitcl.train`) with the given overrides, validating every
epoch and stopping at the first validation whose `val/knn_acc` reaches the target (Lightning's
`EarlyStopping` with a stopping threshold). The wall time is the whole process: start-up, data
loading, training and every kNN evaluation. Not part of `make bench` (it takes minutes):

    .venv/bin/python benchmarks/time_to_knn.py [override ...]

Data are read from ORBITCL_DATA_DIR, by default ../shared/data beside the repository.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = ["loss=orl", "dataset=mnist", "trainer.max_epochs=3"]  # the schedule's length too
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
DEFAULTS = [
    "logger=csv",
    "callbacks.tension=null",  # diagnostics off: this measures training to quality
    "callbacks.orbit=null",
    "callbacks.class_geometry=null",
    "callbacks.similarity=null",
    "callbacks.umap=null",
    "callbacks.spectrum=null",
]


def stop_override(target: float) -> str:
    """The override that stops training at the first validation with val/knn_acc >= target."""
    return (
        "+callbacks.stop_at_target={_target_:lightning.pytorch.callbacks.EarlyStopping,"
        f"monitor:'val/knn_acc',mode:max,stopping_threshold:{target},patience:1000}}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument(
        "--preset", default="orl_mnist_fast", help="a src/orbitcl/conf/experiment preset, or 'none'"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, after the defaults")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        stop = stop_override(args.target)
        start_from = BARE if args.preset == "none" else [f"+experiment={args.preset}"]
        argv = [*start_from, *DEFAULTS, *args.overrides]
        command = [sys.executable, "-m", "orbitcl.train", *argv, stop]
        command.append(f"hydra.run.dir={run_dir}")
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"training failed:\n{result.stderr[-3000:]}")
        with open(run_dir / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get("val/knn_acc")]
    history = ", ".join(f"epoch {r['epoch']}: {float(r['val/knn_acc']):.4f}" for r in rows)
    reached = [r for r in rows if float(r["val/knn_acc"]) >= args.target]
    print(" ".join(argv))
    print(f"kNN accuracy by epoch: {history}")
    if reached:
        print(f"time to kNN {args.target}: {wall:.0f} s (epoch {reached[0]['epoch']})")
    else:
        print(f"kNN {args.target} NOT reached; the run took {wall:.0f} s")


if __name__ == "__main__":
    main()

"""The similarity statistics' cost (issue #18: under 3% of an MNIST epoch at the defaults).

The callback's work at its defaults (``callbacks.similarity``: 5,000 fixed training images x 2
views, statistics every 50 steps on the training batch) against a training epoch of the default
MNIST run (conv_small, NT-Xent, batch 256 x 2 views, AdamW), all measured in this process:

- drawing the fixed views, once per run (the run's batched pipeline, as the callback does);
- per validation: embedding the 10,000 views and the statistics over them;
- the batch statistics (every 50 steps, on the training batch's projections);
- an epoch: 234 model steps (forward, loss, backward, optimiser) on ready views, the median
  step; the data pipeline's time is left out, so the ratios are upper bounds.

Prints each cost as a share of the epoch; target: per validation + batch statistics < 3%.
MNIST from ``$ORBITCL_DATA_DIR``, else ``../shared/data``.

    .venv/bin/python benchmarks/bench_similarity.py
"""

import os
import statistics
import time
from pathlib import Path

from timing import mnist_training_parts, seconds

from orbitcl.metrics import similarity
from orbitcl.metrics.orbits import embed, sample_orbits

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
TARGET = 0.03
N_IMAGES, EVERY_N_STEPS, STEPS_PER_EPOCH = 5000, 50, 234  # 60,000 / 256


def main() -> None:
    cfg, dm, encoder, projector, loss_fn, optimizer = mnist_training_parts()
    bank = dm.val_dataloader()[0].dataset
    pairs = None

    def draw():
        nonlocal pairs
        pairs = sample_orbits(
            bank.images,
            bank.labels,
            N_IMAGES,
            2,
            dm.train_transform,
            0,
            batch_transform=dm.augment_batch,
        )

    t_draw = seconds(draw)
    images = pairs.views.transpose(0, 1).flatten(0, 1)  # (2M, ...)
    z = None

    def embed_views():
        nonlocal z
        _, z = embed(encoder, projector, images, cfg.callbacks.similarity.batch_size)

    t_embed = seconds(embed_views)
    t_stats = seconds(lambda: similarity.similarities(z[:N_IMAGES], z[N_IMAGES:]))
    batch = images[: 2 * cfg.dataset.batch_size]
    steps, projections = [], None
    for _ in range(8):
        start = time.perf_counter()
        projections = projector(encoder(batch)).chunk(2)
        loss = loss_fn(*projections)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - start)
    step = statistics.median(steps[1:])
    detached = [p.detach() for p in projections]
    t_batch = statistics.median(
        seconds(lambda: similarity.similarities(*detached)) for _ in range(5)
    )
    epoch = STEPS_PER_EPOCH * step
    per_validation = (t_embed + t_stats) / epoch
    batch_share = t_batch * STEPS_PER_EPOCH / EVERY_N_STEPS / epoch
    print(
        f"MNIST epoch: {STEPS_PER_EPOCH} steps x {step:.3f} s = {epoch:.1f} s (model step on ready "
        f"views, batch {cfg.dataset.batch_size} x 2)"
    )
    print(
        f"drawing {2 * N_IMAGES} fixed views, once per run: {t_draw:.2f} s ({t_draw / epoch:.2%})"
    )
    print(
        f"per validation: embedding {t_embed:.2f} s + statistics {t_stats:.2f} s = "
        f"{per_validation:.2%} of an epoch"
    )
    print(
        f"batch statistics every {EVERY_N_STEPS} steps: {t_batch * 1e3:.1f} ms ({batch_share:.3%})"
    )
    total = per_validation + batch_share
    verdict = "holds" if total < TARGET else "DOES NOT HOLD"
    print(f"similarity statistics per epoch: {total:.2%} (target < {TARGET:.0%}) {verdict}")
    if total >= TARGET:
        raise SystemExit(1)  # `make bench` stops here: a regression must be noticed


if __name__ == "__main__":
    main()

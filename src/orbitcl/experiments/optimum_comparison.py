"""A trained run's class geometry beside the optimum its loss aims for (geometry.md, "Optimal
geometries"; "Class geometry of trained embeddings"): what `orbitcl.analyze` writes to
`class_geometry.md`, `.json` and `.png`.

Trained: the class geometry (`metrics.class_geometry`) of up to `n_per_class` test images per
class in projector space, the images `ClassGeometry` measures during training (same `seed`).
Predicted: the same metrics on `experiments.optimum.optimal_embeddings` for the run's loss, free
unit embeddings of the run's projector dimension for the run's training class counts scaled down to
at most `max_per_class` images per class in the same proportions (at least one each), a short
solve of at most `steps` steps (seconds). A loss that takes class labels (SupCon, Soft SupCon,
X-CLR) has a predicted class geometry; the optimum of the others (NT-Xent) ignores classes, so
only the trained geometry is given. `size_correlation` uses the run's own class counts in both,
and is left out when they are all equal.
"""

import json
import logging
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from orbitcl.callbacks.class_geometry import images_per_class
from orbitcl.experiments.optimum import optimal_embeddings, summary
from orbitcl.experiments.runs import TrainedRun
from orbitcl.experiments.trust import UntrustedTargetError, check_targets
from orbitcl.losses.base import Loss
from orbitcl.metrics.class_geometry import class_geometry, prototype_cosines
from orbitcl.metrics.orbits import embed
from orbitcl.tracking import plots
from orbitcl.training.config import build
from orbitcl.training.labels import serve_class_similarity

log = logging.getLogger(__name__)

# Table columns: (metric of metrics.class_geometry, header).
COLUMNS = [
    ("simplex_deviation", "simplex deviation"),
    ("within_cos", "within cos"),
    ("between_cos", "between cos"),
    ("gap", "gap"),
    ("prototype_cos_std", "prototype cos std"),
    ("size_correlation", "size correlation"),
]


def scaled_counts(counts: list[int], max_per_class: int) -> list[int]:
    """`counts` scaled so that the largest is `max_per_class`, rounded, each at least 1."""
    largest = max(counts)
    return [max(1, round(max_per_class * n / largest)) for n in counts]


def predicted_embeddings(
    run: TrainedRun, counts: list[int], dim: int, max_per_class: int, steps: int, seed: int
) -> tuple[Tensor, Tensor, float | None] | None:
    """(unit embeddings (2N, dim) of the optimum, their labels (2N,), and for a weighted loss
    `L - H(W)` there: 0 where the loss reaches its bound) for the run's loss, or None if it
    takes no class labels (or is not one orbitcl may build from a run directory)."""
    source = str(run.run_dir / ".hydra" / "config.yaml")
    try:
        check_targets(run.cfg.loss, "loss", source)
    except UntrustedTargetError:
        log.info("%s: loss %s is not orbitcl's: no prediction", run.name, run.cfg.loss._target_)
        return None
    try:
        loss = build("loss", run.cfg.loss)
        needs = loss.needs if isinstance(loss, Loss) else None
        if needs is None or not needs.labels or needs.continuous_labels:
            return None
        serve_class_similarity(run.datamodule, {"loss": loss})  # X-CLR's class_means
    except ValueError as err:  # e.g. X-CLR's .npy file, not where the run left it
        log.warning("%s: no prediction, its loss cannot be built here: %s", run.name, err)
        return None
    small = scaled_counts(counts, max_per_class)
    labels = torch.repeat_interleave(torch.arange(len(small)), torch.tensor(small))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~100 vectors: more threads only wait on each other (10x slower)
    try:
        z = optimal_embeddings(loss, labels, dim, steps=steps, seed=seed)
    finally:
        torch.set_num_threads(threads)
    gap = summary(loss, z, labels).get("loss_minus_entropy")
    return z, labels.repeat(2), gap


def compare(
    run: TrainedRun,
    name: str,
    n_per_class: int = 100,
    max_per_class: int = 10,
    steps: int = 2000,
    seed: int = 0,
) -> dict | None:
    """The trained and predicted class geometry of `run`, called `name` (metrics and prototype
    cosines, C x C lists); None if its training images carry no class labels."""
    datamodule = run.datamodule
    datamodule.setup()
    counts = datamodule.train_class_counts()
    if counts is None:
        return None
    sizes = torch.tensor(counts) if len(set(counts)) > 1 else None
    images, labels = images_per_class(datamodule, n_per_class, seed)  # uint8
    _, z = embed(run.encoder, run.projector, images, normalise=datamodule.normalise)
    n_classes = datamodule.num_classes
    row = {"name": name, "class_counts": counts, "test_images": len(labels)}
    row["trained"] = class_geometry(z, labels, n_classes, sizes)
    row["trained_cosines"] = prototype_cosines(z, labels, n_classes).tolist()
    optimum = predicted_embeddings(run, counts, z.shape[1], max_per_class, steps, seed)
    row["predicted"] = row["predicted_cosines"] = None
    if optimum is not None:
        z_opt, labels_opt, row["loss_minus_entropy"] = optimum
        row["predicted"] = class_geometry(z_opt, labels_opt, n_classes, sizes)
        row["predicted_cosines"] = prototype_cosines(z_opt, labels_opt, n_classes).tolist()
        row["predicted_counts"] = scaled_counts(counts, max_per_class)
        row["agreement"] = agreement(row["trained_cosines"], row["predicted_cosines"])
    return row


def agreement(trained: list, predicted: list) -> dict[str, float]:
    """How close two prototype cosine matrices are, over the pairs c < c': the Pearson
    correlation of their entries and the largest absolute difference."""
    a, b = torch.tensor(trained), torch.tensor(predicted)
    upper = torch.triu_indices(len(a), len(a), offset=1)
    x, y = a[upper[0], upper[1]], b[upper[0], upper[1]]
    pearson = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    return {"pearson": pearson, "max_abs_diff": (x - y).abs().max().item()}


def write(rows: list[dict], out: Path) -> None:
    """`class_geometry.md`, `.json` and `.png` (trained | predicted heatmaps, a row per run)."""
    (out / "class_geometry.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "class_geometry.md").write_text(markdown(rows))
    fig = Figure(figsize=(9.6, 4.2 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (trained_ax, predicted_ax), row in zip(axes, rows, strict=True):
        title = f"{row['name']}: trained (test images)"
        plots.draw_cosine_heatmap(fig, trained_ax, torch.tensor(row["trained_cosines"]), title)
        if row["predicted_cosines"] is None:
            predicted_ax.set_axis_off()
            predicted_ax.set_title(f"{row['name']}: no predicted class geometry", fontsize=9)
            continue
        title = f"{row['name']}: predicted (optimum)"
        plots.draw_cosine_heatmap(fig, predicted_ax, torch.tensor(row["predicted_cosines"]), title)
    plots.save(fig, out / "class_geometry.png")


def markdown(rows: list[dict]) -> str:
    header = "| run | geometry | " + " | ".join(h for _, h in COLUMNS) + " |"
    lines = [header, "| --- | --- |" + " ---: |" * len(COLUMNS)]
    for row in rows:
        for kind in ("trained", "predicted"):
            if (metrics := row[kind]) is not None:
                cells = [f"{metrics[c]:.4f}" if c in metrics else "" for c, _ in COLUMNS]
                lines.append(f"| {row['name']} | {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Trained: projector space, on test images of each class. Predicted: the optimum of the "
        "run's loss on free unit embeddings of the same dimension, for its training class counts "
        "scaled down (losses that take class labels only). Size correlation: Spearman over class "
        "pairs between n_c + n_c' and the prototype cosine (only where the class counts differ).",
        "",
    ]
    return "\n".join([*lines, *(note(row) for row in rows)]) + "\n"


def note(row: dict) -> str:
    """What a row was measured on and, with a prediction, how close the two matrices are."""
    text = f"- {row['name']}: training images per class {row['class_counts']}, "
    text += f"{row['test_images']} test images"
    if row["predicted"] is None:
        return text + "; no prediction (its loss takes no class labels)"
    text += f"; predicted from {row['predicted_counts']}"
    if row["loss_minus_entropy"] is not None:
        text += f" (there L - H(W) = {row['loss_minus_entropy']:.1e})"
    agree = row["agreement"]
    return text + (
        f"; prototype cosines, trained against predicted: Pearson {agree['pearson']:.3f}, "
        f"max |difference| {agree['max_abs_diff']:.3f}"
    )

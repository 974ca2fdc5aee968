"""Two or more trained runs side by side: the figures and table `python -m orbitcl.analyze`
writes (and a sweep's report draws for a study, `experiments.report.figures`).

Every run is measured on the same test images and the same augmented views (drawn from `seed`
with the first run's augmentation, exactly as the `OrbitDiagnostics` callback draws them).
"""

import json
import logging
from pathlib import Path

import torch

from orbitcl.experiments import optimum_comparison
from orbitcl.experiments.downstream import downstream_accuracy
from orbitcl.experiments.runs import TrainedRun
from orbitcl.metrics import geometry, spectrum
from orbitcl.metrics.class_tension import class_tension, rank_correlation
from orbitcl.metrics.knn import confusion_matrix, leave_one_out_predict
from orbitcl.metrics.orbits import embed, embed_orbits, orbits_of_test_split
from orbitcl.tracking import plots

log = logging.getLogger(__name__)

# Table columns: (key in a row, header, format).
COLUMNS = [
    ("variance", "orbit variance", ".4f"),
    ("anchor_view_cos", "anchor-view cos", ".4f"),
    ("pairwise_cos", "view-view cos", ".4f"),
    ("alignment", "alignment", ".4f"),
    ("uniformity", "uniformity", ".3f"),
    ("rankme", "RankMe", ".1f"),
    ("alpha", "alpha-ReQ", ".3f"),
    ("lidar", "LiDAR", ".1f"),
    ("knn_top1", "kNN top-1", ".4f"),
    ("probe_top1", "probe top-1", ".4f"),
]


def check_comparable(runs: list[TrainedRun]) -> None:
    """Runs must share a dataset; a different augmentation is allowed but said (the views are
    the first run's)."""
    first = runs[0]
    for run in runs[1:]:
        if run.cfg.dataset._target_ != first.cfg.dataset._target_:
            raise ValueError(
                f"{run.name} was trained on {run.cfg.dataset._target_}, {first.name} on "
                f"{first.cfg.dataset._target_}: compare runs on one dataset"
            )
        if run.cfg.dataset.get("augment") != first.cfg.dataset.get("augment"):
            log.warning("%s used another augmentation; all views use %s's", run.name, first.name)


def unique_names(runs: list[TrainedRun]) -> list[str]:
    """Run names, suffixed with their folder where two would be equal."""
    names = [run.name for run in runs]
    return [
        name if names.count(name) == 1 else f"{name} ({run.run_dir.name})"
        for name, run in zip(names, runs, strict=True)
    ]


def analyze(
    runs: list[TrainedRun],
    out: Path,
    names: list[str] | None = None,
    n_anchors: int = 200,
    n_views: int = 10,
    umap_images: int = 300,
    umap_views: int = 5,
    seed: int = 0,
    downstream: bool = True,
    optimum_steps: int = 2000,
) -> list[dict]:
    """Writes the figures and tables to `out`; returns the table's rows. `downstream=False`
    leaves out kNN and the linear probe (minutes on a CPU; a sweep's report has its jobs' own)."""
    check_comparable(runs)
    names = names or unique_names(runs)
    if len(names) != len(runs) or len(set(names)) != len(names):
        raise ValueError(f"names={names} is invalid: need one distinct name per run")
    out.mkdir(parents=True, exist_ok=True)
    runs[0].datamodule.setup()
    orbits = orbits_of_test_split(runs[0].datamodule, n_anchors, n_views, seed)
    umap_orbits = orbits_of_test_split(runs[0].datamodule, umap_images, umap_views, seed)
    normalise = runs[0].datamodule.normalise

    rows, cosines, umaps, tensions = [], {"projector": {}, "encoder": {}}, {}, {}
    n_classes = int(runs[0].datamodule.num_classes or 0)
    n_classes = n_classes if len(orbits.labels.unique()) == n_classes else 0  # all classes drawn
    for name, run in zip(names, runs, strict=True):
        log.info("measuring %s (%s)", name, run.checkpoint)
        # The first run's eval transform for the uint8 anchors of all (the same test split).
        spaces = embed_orbits(run.encoder, run.projector, orbits, normalise=normalise)
        metrics = {space: geometry.orbit_metrics(*spaces[space]) for space in spaces}
        for space, (_, views) in spaces.items():
            metrics[space] |= spectrum.view_metrics(views)[0]  # rankme, alpha, lidar
        if n_classes >= 2:
            tensions[name] = run_class_tension(run, spaces, orbits.labels, n_classes)
        for space, (anchors, views) in spaces.items():
            cosines[space][name] = geometry.anchor_view_cosine(anchors, views)  # (A, K)
        row = {"name": name, "checkpoint": str(run.checkpoint), "step": run.global_step}
        row |= metrics["projector"] | {f"encoder_{k}": v for k, v in metrics["encoder"].items()}
        row |= downstream_accuracy(run) if downstream else {}
        rows.append(row)

        _, projections = embed(run.encoder, run.projector, umap_orbits.views.flatten(0, 1))
        xy = plots.umap_coordinates(projections, seed).reshape(*umap_orbits.views.shape[:2], 2)
        umaps[name] = (xy, umap_orbits.labels)

    a, k = orbits.views.shape[:2]
    for space, suffix in (("projector", ""), ("encoder", "_encoder")):
        title = f"anchor-view cosine, {space} space ({a} anchors x {k} views)"
        plots.save(
            plots.cosine_histograms(cosines[space], title), out / f"anchor_view_cos{suffix}.png"
        )
    title = f"UMAP of projector embeddings (cosine), {umap_orbits.views.shape[1]} views/image"
    plots.save(plots.umap_panels(umaps, title=title), out / "umap.png")

    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "table.md").write_text(markdown_table(rows, a, k))

    if tensions:
        panels = {
            f"{n}: rho = {t['spearman_confusion']:.2f}": t["tension"] for n, t in tensions.items()
        }
        title = (
            f"mean ORL tension between classes ({a} test images x 2 views); rho: with kNN confusion"
        )
        plots.save(plots.class_matrices(panels, title), out / "class_tension.png")
        record = {
            n: {k: v.tolist() if torch.is_tensor(v) else v for k, v in t.items()}
            for n, t in tensions.items()
        }
        (out / "class_tension.json").write_text(json.dumps(record, indent=2) + "\n")

    compared = [
        optimum_comparison.compare(r, n, seed=seed, steps=optimum_steps)
        for r, n in zip(runs, names, strict=True)
    ]
    if compared := [row for row in compared if row is not None]:
        optimum_comparison.write(compared, out)
    return rows


def run_class_tension(run: TrainedRun, spaces, labels, n_classes: int) -> dict:
    """A run's class tension (projections of the first two views of each anchor, its loss's
    temperature and t_min, else ORL's defaults) and its rank correlation with the confusion of a
    leave-one-out kNN on the anchors' encoder features."""
    loss = run.cfg.get("loss") or {}
    result = class_tension(
        spaces["projector"][1][:, 0],
        spaces["projector"][1][:, 1],
        labels,
        n_classes,
        float(loss.get("temperature", 0.5)),
        float(loss.get("t_min", 1e-6)),
    )
    confusion = confusion_matrix(
        leave_one_out_predict(spaces["encoder"][0], labels, n_classes), labels, n_classes
    )
    return {
        "tension": result.tension,
        "share": result.share,
        "confusion": confusion,
        "spearman_confusion": rank_correlation(result.tension, confusion),
        "spearman_share_confusion": rank_correlation(result.share, confusion),
    }


def markdown_table(rows: list[dict], n_anchors: int, n_views: int) -> str:
    columns = [column for column in COLUMNS if column[0] in rows[0]]  # kNN, probe: if measured
    header = "| run | " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "| --- |" + " ---: |" * len(columns)
    lines = [
        f"| {r['name']} | " + " | ".join(f"{r[c]:{f}}" for c, _, f in columns) + " |" for r in rows
    ]
    note = (
        f"\nOrbit metrics in projector space on {n_anchors} test anchors x {n_views} views; "
        "alignment over pairs of views (lower: tighter), uniformity over the anchors (t = 2, "
        "lower: more uniform)"
        + ("; kNN and linear probe on encoder features.\n" if "knn_top1" in rows[0] else ".\n")
    )
    return "\n".join([header, rule, *lines]) + "\n" + note

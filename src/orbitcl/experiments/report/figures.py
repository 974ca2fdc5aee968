"""The write-up's figures from a sweep: one checkpoint per setting (the job of one seed), drawn
side by side by `experiments.analysis` (what `orbitcl.analyze` runs) into `<sweep dir>/figures/`:
overlaid anchor-view cosine histograms (200 anchors x 10 views), UMAP panels (K = 5 views)
and their table.

Checkpoints are loaded through `experiments.runs.load_run`, so only allow-listed `_target_`s are
built (`--allow-target`, `ORBITCL_ALLOW_TARGETS`). Torch and the models are imported only here,
when figures are asked for: the rest of the report stays light.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orbitcl.experiments.report.plane import setting_label

FIGURES_DIR = "figures"


def pick_jobs(rows: list[dict], keys: list[str], replicate: str, value: Any = 0) -> dict[str, str]:
    """{setting's label: job} with one finished job per setting of the keys other than
    `replicate`: the one whose replicate is `value`, else the setting's first finished job."""
    setting_keys = [k for k in keys if k != replicate]
    picked: dict[str, dict] = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        label = setting_label({k: row[k] for k in setting_keys}) if setting_keys else row["job"]
        chosen = picked.get(label)
        if chosen is None or (chosen.get(replicate) != value and row.get(replicate) == value):
            picked[label] = row
    return {label: row["job"] for label, row in picked.items()}


def draw_figures(
    sweep_dir: Path, jobs: dict[str, str], options: dict, allow: Iterable[str] = ()
) -> list[Path]:
    """Draws the figures of `jobs` ({name: job directory in the sweep}) into
    `sweep_dir/figures/` with `options` (claims.FIGURE_DEFAULTS' keys); returns the files."""
    import torch

    from orbitcl.experiments.analysis import analyze
    from orbitcl.experiments.runs import load_run

    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = [load_run(sweep_dir / job, device, allow) for job in jobs.values()]
    out = sweep_dir / FIGURES_DIR
    analyze(
        runs,
        out,
        names=list(jobs),
        n_anchors=options["anchors"],
        n_views=options["views"],
        umap_images=options["umap_images"],
        umap_views=options["umap_views"],
        downstream=False,  # the sweep's table already has each job's kNN and linear accuracy
    )
    written = ["anchor_view_cos.png", "anchor_view_cos_encoder.png", "umap.png"]
    written += ["table.md", "table.json"]
    return [out / name for name in written]

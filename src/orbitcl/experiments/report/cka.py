"""How much the study's settings differ in their representations, against how much two seeds of
one setting do: linear CKA (``metrics.across_runs``) between the runs' projections of the same
fixed test images, from the jobs' last checkpoints (loaded through the allow-list).

- between settings: the CKA matrix of each setting's seed-0 run (the lowest replicate);
- within each setting: the mean CKA over its pairs of seeds.

Two losses differ in representation beyond seed noise where the first is well below the second.
Written to ``sweep_report_cka.md`` and ``.json``; nothing when fewer than two finished jobs
have a checkpoint."""

import itertools
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from orbitcl.metrics.across_runs import linear_cka_matrix
from orbitcl.metrics.orbits import embed, fixed_test_images

log = logging.getLogger(__name__)
N_IMAGES = 1000
FILE = "sweep_report_cka"


def setting_name(swept: dict, replicate: str) -> str:
    """``loss=orl temperature=0.5``: the swept values but the replicate's."""
    return " ".join(f"{k}={v}" for k, v in swept.items() if k != replicate) or "all"


def cka_report(
    sweep_dir: Path, jobs: list[dict], replicate: str, allow: Iterable[str] = (), seed: int = 0
) -> str | None:
    """Writes the two CKA tables; returns their Markdown, or None when there is nothing to
    compare."""
    from orbitcl.experiments.runs import load_run  # builds models: paid only by a report with CKA

    finished = [
        j
        for j in jobs
        if j.get("status") == "ok"
        and (sweep_dir / j["job"] / "checkpoints" / "last.ckpt").is_file()
    ]
    if len(finished) < 2:
        return None
    by_setting: dict[str, list[dict]] = {}
    for job in finished:
        by_setting.setdefault(setting_name(job.get("swept", {}), replicate), []).append(job)
    for runs in by_setting.values():
        runs.sort(key=lambda j: str(j.get("swept", {}).get(replicate, "")))
    images = normalise = None
    projections: dict[str, list] = {}
    for name, setting_jobs in by_setting.items():
        for job in setting_jobs:
            run = load_run(sweep_dir / job["job"], "cpu", allow)
            if images is None:  # uint8, and the first run's eval transform for all
                images = fixed_test_images(run.datamodule, N_IMAGES, seed)
                normalise = run.datamodule.normalise
            z = embed(run.encoder, run.projector, images, normalise=normalise)[1]
            projections.setdefault(name, []).append(z)
    names = list(projections)
    between = linear_cka_matrix([projections[name][0] for name in names])
    within = {
        name: [m[i][j] for i, j in itertools.combinations(range(len(z)), 2)]
        for name, z in projections.items()
        for m in [linear_cka_matrix(z)]
    }
    lines = [
        f"## Linear CKA of the projections ({len(images)} fixed test images)",
        "",
        f"Between settings (each setting's first {replicate}):",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
        *[
            f"| {a} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
            for a, row in zip(names, between, strict=True)
        ],
        "",
        f"Within each setting, across its {replicate}s (mean over pairs; one {replicate}: none):",
        "",
        "| setting | pairs | mean CKA |",
        "| --- | ---: | ---: |",
        *[
            f"| {n} | {len(v)} | " + (f"{sum(v) / len(v):.3f}" if v else "-") + " |"
            for n, v in within.items()
        ],
        "",
    ]
    text = "\n".join(lines)
    (sweep_dir / f"{FILE}.md").write_text(text)
    record = {"settings": names, "between": between, "within": within, "images": len(images)}
    (sweep_dir / f"{FILE}.json").write_text(json.dumps(record, indent=2) + "\n")
    return text

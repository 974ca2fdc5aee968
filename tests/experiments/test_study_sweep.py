"""`python -m orbitcl.train -m +experiment=orl_controls`, shrunk to 2 losses x 2 seeds of a few
digits steps: the sweep ends with a report holding the claims, the plane and the figures, and
`python -m orbitcl.report DIR` rebuilds the same report from the directory alone."""

import pytest
from helpers.train_cli import run_module

TINY = [  # 8x8 digits, 4 steps per job, small orbits and figures
    "dataset=digits",
    "loss=ntxent,orl",  # the command line's sweep wins over the preset's
    "seed=0,1",
    "study.against=[ntxent]",
    "trainer.max_steps=4",
    "dataset.num_workers=0",
    "logger=csv",
    "callbacks.class_geometry=null",
    "callbacks.orbit.n_anchors=20",
    "callbacks.orbit.n_views=4",
    "study.figures.anchors=20",
    "study.figures.views=4",
    "study.figures.umap_images=20",
    "hydra.sweep.subdir=${hydra.job.num}",  # the overrides would make too long a name
]


@pytest.mark.slow
def test_orl_controls_ends_with_claims_plane_and_figures(tmp_path):
    sweep_dir = tmp_path / "study"
    result = run_module(
        "-m", "+experiment=orl_controls", *TINY, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (sweep_dir / "sweep_report.md").read_text()
    assert "4 jobs (4 ok); swept: loss, seed." in text
    claims = text.rstrip().splitlines()[-2:]  # the report ends with one line per claim
    assert "orbit/anchor_view_cos, orl higher than each of ntxent: ntxent: " in claims[0]
    assert "orbit/variance, orl lower than each of ntxent: ntxent: " in claims[1]
    assert "(paired t, 2 pairs, d_z" in claims[1]  # seeds 0 and 1 of both losses
    assert "## Alignment-uniformity plane" in text and "**orl**: not resolved" in text
    assert (sweep_dir / "sweep_report_plane.png").is_file()
    # The figures: one checkpoint per loss, seed 0.
    assert "ntxent (`0`), orl (`2`)" in text
    for name in ("anchor_view_cos.png", "anchor_view_cos_encoder.png", "umap.png", "table.md"):
        assert (sweep_dir / "figures" / name).stat().st_size > 0, name
        assert f"`figures/{name}`" in text
    assert "| orl |" in (sweep_dir / "figures" / "table.md").read_text()

    (sweep_dir / "sweep_report.md").unlink()
    rebuilt = run_module(str(sweep_dir), module="orbitcl.report", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (sweep_dir / "sweep_report.md").read_text() == text

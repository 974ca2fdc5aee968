"""The walkthrough notebook runs top to bottom on a tiny setting, and is stored without outputs."""

import nbformat
from helpers.paths import ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "tension_and_orbits.ipynb"
DIAGNOSTICS = ("tension", "orbit", "class_geometry", "similarity", "spectrum")


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_notebook_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    # Tiny: one epoch of digits (5 steps) without the training runs' own diagnostics (the
    # notebook measures its runs itself), fewer orbits, a small UMAP.
    off = [f"callbacks.{name}=null" for name in DIAGNOSTICS]
    parameters.source += (
        f'\nEPOCHS = 1\nOUT = "{tmp_path / "runs"}"\nN_ANCHORS, N_VIEWS = 50, 4\n'
        f"UMAP_IMAGES, UMAP_VIEWS = 40, 5\nTRAIN_OVERRIDES = {off!r}\n"
    )
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "kNN accuracy" in text  # printed by each training run
    markdown = [o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert len(markdown) == 3  # tension, orbit and downstream tables
    assert "| orl | projector |" in markdown[1] and "| ntxent | encoder |" in markdown[1]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # two tension histograms, the cosine histogram, the UMAP panels
    for loss in ("ntxent", "orl"):
        assert (tmp_path / "runs" / loss / "checkpoints" / "last.ckpt").is_file()

"""orbitcl.tracking.plots: the figures hold what they claim, and UMAP's neighbour graph is exact."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from orbitcl.tracking import plots


def test_cosine_neighbours_are_exact_and_start_with_the_point_itself():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    indices, distances, index = plots.cosine_neighbours(x, k=7, chunk=64)  # several chunks
    assert index is None and indices.shape == distances.shape == (300, 7)
    assert (indices[:, 0] == np.arange(300)).all()
    reference = NearestNeighbors(n_neighbors=7, metric="cosine").fit(x.numpy())
    ref_distances, ref_indices = reference.kneighbors(x.numpy())
    assert (indices == ref_indices).all()
    assert np.allclose(distances, ref_distances, atol=1e-5)


def test_umap_of_two_far_apart_clusters_keeps_them_apart():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(2, 32) * 10
    x = centres.repeat_interleave(60, dim=0) + torch.randn(120, 32, generator=g)  # 60 + 60
    xy = plots.umap_coordinates(x, seed=0)
    assert xy.shape == (120, 2) and np.isfinite(xy).all()
    between = np.linalg.norm(xy[:60].mean(0) - xy[60:].mean(0))
    within = max(xy[:60].std(0).max(), xy[60:].std(0).max())
    assert between > 3 * within


def test_cosine_histograms_overlay_one_series_per_model_with_its_mean():
    series = {"ntxent": torch.full((4, 5), 0.5), "orl": torch.full((4, 5), 0.9)}
    fig = plots.cosine_histograms(series, "title")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ntxent (0.500)", "orl (0.900)"]
    assert sum(p.get_height() for p in ax.patches) == pytest.approx(40)  # every pair counted


def test_tension_histogram_reports_the_clamped_share(tmp_path):
    values = torch.tensor([1e-6, 1e-6, 0.3, 0.6])
    fig = plots.tension_histogram(values, t_min=1e-6)
    (ax,) = fig.axes
    assert ax.get_legend().get_texts()[0].get_text() == "clamped: 50.0%"
    path = plots.save(fig, tmp_path / "sub" / "tension.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_umap_panels_draw_one_panel_per_model():
    xy = np.random.default_rng(0).normal(size=(10, 5, 2))
    labels = torch.arange(10)
    fig = plots.umap_panels({"a": (xy, labels), "b": (xy, labels)}, n_orbits_drawn=3)
    panels = [ax for ax in fig.axes if ax.get_title() in {"a", "b"}]
    assert len(panels) == 2
    # 3 drawn orbits x 5 views: one line from the orbit's centre to each view.
    assert len(panels[0].lines) == 15


def test_class_matrices_colour_the_off_diagonal_range_with_each_panels_axes():
    confusion = torch.tensor([[0.9, 0.1, 0.0], [0.05, 0.8, 0.15], [0.0, 0.3, 0.7]])
    fig = plots.class_matrices(
        {"tension": confusion.T, "kNN": (confusion, ("true class", "predicted class"))}
    )
    ax_tension, ax_knn = fig.axes[:2]  # the panels; their colour bars follow
    low, high = ax_knn.images[0].get_clim()
    assert (low, high) == pytest.approx((0.0, 0.3))  # the diagonal (0.7 .. 0.9) saturates
    assert (ax_knn.get_ylabel(), ax_knn.get_xlabel()) == ("true class", "predicted class")
    assert ax_tension.get_xlabel() == plots.CLASS_AXES[1]
    assert len(ax_knn.patches) == 3  # the diagonal outlined

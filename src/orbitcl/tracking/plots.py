"""The diagnostics' figures: tension histograms, anchor-view cosine histograms, UMAP panels.

Figures are built with `matplotlib.figure.Figure`, not pyplot: no global figure list to leak
into during a long run, and no GUI backend needed (saving picks Agg), so it is safe in callbacks
and in worker threads. In a notebook, `display(fig)` shows one.
"""

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

CLASS_COLOURS = "tab10"


def save(fig: Figure, path: str | Path) -> Path:
    """Writes `fig` to `path` (creating its folder) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def tension_histogram(values: Tensor, t_min: float, title: str = "", bins: int = 50) -> Figure:
    """Histogram of the tension of negatives, in [0, 1]; the clamped share is in the legend,
    since at t_min it is a spike that a linear axis would flatten the rest against."""
    values = values.detach().float().cpu().numpy()
    clamped = float((values <= t_min).mean())
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, range=(0.0, 1.0), color="C0", label=f"clamped: {clamped:.1%}")
    ax.set_yscale("log")
    ax.set_xlabel("tension T of negatives")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    return fig


def cosine_heatmap(cosines: Tensor, title: str = "") -> Figure:
    """The C x C matrix of prototype cosines as a heatmap on [-1, 1], each cell annotated."""
    fig = Figure(figsize=(4.8, 4.2))
    draw_cosine_heatmap(fig, fig.add_subplot(), cosines, title)
    return fig


def draw_cosine_heatmap(fig: Figure, ax, cosines: Tensor, title: str = "") -> None:
    """`cosine_heatmap`'s picture in the axes `ax` of `fig` (for figures of several panels)."""
    values = cosines.detach().double().cpu().numpy()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if len(values) <= 12:  # numbers stay legible
        for (row, col), value in np.ndenumerate(values):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("class")
    ax.set_ylabel("class")
    ax.set_title(title, fontsize=9)


def cosine_histograms(series: Mapping[str, Tensor], title: str = "", bins: int = 50) -> Figure:
    """Overlaid histograms of anchor-view cosines, one per model, on shared bins; the mean of
    each is marked with a dashed line."""
    arrays = {name: v.detach().float().cpu().numpy().ravel() for name, v in series.items()}
    low = min(float(a.min()) for a in arrays.values())
    edges = np.linspace(min(np.floor(low * 20) / 20, 0.95), 1.0, bins + 1)
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.add_subplot()
    for i, (name, values) in enumerate(arrays.items()):
        ax.hist(values, bins=edges, alpha=0.5, color=f"C{i}", label=f"{name} ({values.mean():.3f})")
        ax.axvline(values.mean(), color=f"C{i}", linestyle="--", linewidth=1)
    ax.set_xlabel("cosine(anchor, augmented view)")
    ax.set_ylabel("anchor-view pairs")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return fig


def similarity_histograms(
    counts: Mapping[str, Tensor], edges: Tensor, title: str = "", marks: Mapping[str, float] = {}
) -> Figure:
    """Densities of similarities already binned on `edges` (one curve per kind of pair:
    positives, cross-view and within-view negatives), with reference values drawn as dotted
    vertical lines (`marks`: label -> value)."""
    edges = edges.numpy()
    centres, widths = (edges[1:] + edges[:-1]) / 2, np.diff(edges)
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.add_subplot()
    for i, (name, c) in enumerate(counts.items()):
        c = c.double().numpy()
        ax.plot(centres, c / (c.sum() * widths), color=f"C{i}", label=f"{name} ({int(c.sum())})")
    for j, (name, value) in enumerate(marks.items()):
        ax.axvline(value, color=f"C{len(counts) + j}", linestyle=":", linewidth=1, label=name)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def umap_coordinates(
    x: Tensor, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """2-D UMAP (cosine metric) of embeddings (n, d) -> (n, 2)."""
    import umap  # 2 s to import (numba): paid only by what draws a UMAP

    n_neighbors = min(n_neighbors, len(x) - 1)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_jobs=1,  # what a fixed random_state implies anyway, said here to silence the warning
        precomputed_knn=cosine_neighbours(x, n_neighbors),
    )
    with warnings.catch_warnings():  # without a search index UMAP cannot transform new data
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        return reducer.fit_transform(x.detach().float().cpu().numpy())


def cosine_neighbours(x: Tensor, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, None]:
    """The exact k nearest neighbours of each row of x (n, d) by cosine distance, itself first,
    as UMAP's `precomputed_knn`: indices (n, k), distances (n, k), no search index.

    UMAP computes the same exact graph itself below 4096 points, but through numba code that is
    compiled in every new process: ~8 s, half the cost of a first UMAP of 1500 points.
    """
    z = F.normalize(x.detach().float().cpu(), dim=1)
    indices, distances = [], []
    for rows in z.split(chunk):
        similarity, index = (rows @ z.T).topk(k, dim=1)  # (chunk, k), most similar first
        indices.append(index)
        distances.append((1 - similarity).clamp_min(0))
    return torch.cat(indices).numpy(), torch.cat(distances).numpy(), None


def umap_panels(
    panels: Mapping[str, tuple[np.ndarray, Tensor]], n_orbits_drawn: int = 6, title: str = ""
) -> Figure:
    """One UMAP scatter per model, side by side: name -> (coordinates (A, K, 2), labels (A,)).

    Points are coloured by class; for the first `n_orbits_drawn` images each view is joined to
    the orbit's centre, so one can see orbits tighten from panel to panel (or epoch to epoch).
    """
    fig = Figure(figsize=(5 * len(panels), 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, (xy, labels)) in zip(axes, panels.items(), strict=True):
        k = xy.shape[1]
        classes = np.repeat(labels.cpu().numpy(), k)  # (A*K,): the label of every view
        points = ax.scatter(
            *xy.reshape(-1, 2).T, c=classes, cmap=CLASS_COLOURS, s=4, vmin=-0.5, vmax=9.5
        )
        for orbit in xy[:n_orbits_drawn]:  # (K, 2)
            centre = orbit.mean(axis=0)
            for view in orbit:
                ax.plot(*np.stack([centre, view]).T, color="black", linewidth=0.8)
            ax.scatter(*orbit.T, facecolors="none", edgecolors="black", s=18, linewidths=0.8)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(points, ax=axes.tolist(), ticks=range(10), label="class", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


CLASS_AXES = ("class c (anchors)", "class c' (negatives)")  # rows, columns


def class_matrices(
    panels: Mapping[str, Tensor | tuple[Tensor, tuple[str, str]]],
    title: str = "",
    cmap: str = "viridis",
) -> Figure:
    """(C, C) matrices side by side, one heatmap each (name -> matrix, or (matrix, (row axis
    label, column axis label)); default axes: anchors' class c against negatives' class c').

    Each colour scale spans the matrix's *off-diagonal* entries, the pairs c != c' that the
    rank correlations compare: a diagonal of same-class values (a kNN confusion's ~0.9) would
    otherwise leave every other cell one colour. Diagonal cells outside that range saturate
    and are outlined; every cell is annotated up to 12 classes."""
    fig = Figure(figsize=(5.0 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, panel) in zip(axes, panels.items(), strict=True):
        matrix, (row_label, col_label) = panel if isinstance(panel, tuple) else (panel, CLASS_AXES)
        values = matrix.detach().double().cpu().numpy()
        off = values[~np.eye(len(values), dtype=bool)]
        low, high = (np.nanmin(off), np.nanmax(off)) if off.size else (None, None)
        image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, extend="both")
        for k in range(len(values)):  # the diagonal: same class, outside the colour scale
            ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, lw=1.0, ec="white"))
        if len(values) <= 12:
            middle = (low + high) / 2 if off.size else 0.0
            for (row, col), value in np.ndenumerate(values):
                colour = "black" if value > middle else "white"
                ax.text(
                    col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour
                )
        ax.set_xticks(range(len(values)))
        ax.set_yticks(range(len(values)))
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def spectrum_history(
    steps: list[int], spectra: Mapping[str, list[Tensor]], title: str = ""
) -> Figure:
    """The collapse picture: for each space (name -> one normalised log spectrum
    ``log(sigma_k / sigma_1)`` (n,) per step), a heatmap of rank k (rows, 1 on top) against
    training step (columns): dimensions that die turn dark from the step they die."""
    fig = Figure(figsize=(5.6 * len(spectra), 4.0), layout="constrained")
    axes = fig.subplots(1, len(spectra), squeeze=False)[0]
    for ax, (name, columns) in zip(axes, spectra.items(), strict=True):
        values = torch.stack([c.double() for c in columns], dim=1).numpy()  # (n, steps)
        values = np.maximum(values, -12.0)  # below e^-12 of sigma_1: dead, one colour
        image = ax.imshow(
            values,
            aspect="auto",
            cmap="magma",
            vmin=-12.0,
            vmax=0.0,
            interpolation="nearest",
            extent=(-0.5, len(steps) - 0.5, len(values) + 0.5, 0.5),
        )
        fig.colorbar(image, ax=ax, label=r"$\ln(\sigma_k / \sigma_1)$; -12 and below: dead")
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).round().astype(int))
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(steps[t]) for t in ticks])
        ax.set_xlabel("training step (at each validation)")
        ax.set_ylabel("singular value rank k")
        ax.set_title(f"{name} (d = {len(values)})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

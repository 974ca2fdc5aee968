"""Class geometry (orbitcl.metrics.class_geometry): against direct pairwise formulas on random
embeddings, and on configurations with known values (a regular simplex, collapse)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from orbitcl.callbacks import ClassGeometry
from orbitcl.metrics.class_geometry import class_geometry, prototype_cosines


def direct(z, labels, n_classes):
    """The metrics from every pair of samples and explicit class means (float64)."""
    u = F.normalize(z.double(), dim=1)
    cos = u @ u.T
    same = [(i, j) for i, j in itertools.permutations(range(len(u)), 2) if labels[i] == labels[j]]
    other = [(i, j) for i, j in itertools.permutations(range(len(u)), 2) if labels[i] != labels[j]]
    within = torch.stack([cos[i, j] for i, j in same]).mean().item()
    between = torch.stack([cos[i, j] for i, j in other]).mean().item()
    means = torch.stack([u[labels == c].mean(0) for c in range(n_classes)])
    proto = F.normalize(means, dim=1) @ F.normalize(means, dim=1).T
    deviation = max(
        abs(proto[a, b].item() + 1 / (n_classes - 1))
        for a, b in itertools.permutations(range(n_classes), 2)
    )
    return proto, {"simplex_deviation": deviation, "within_cos": within, "between_cos": between}


def test_metrics_match_the_pairwise_formulas():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 6, generator=g)
    labels = torch.arange(40) % 4
    proto, expected = direct(z, labels, 4)
    metrics = class_geometry(z, labels, 4, class_sizes=torch.tensor([10, 20, 30, 40]))
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name
    assert metrics["gap"] == pytest.approx(expected["within_cos"] - expected["between_cos"])
    torch.testing.assert_close(prototype_cosines(z, labels, 4), proto, rtol=1e-12, atol=1e-12)
    sizes = [10, 20, 30, 40]
    pairs = list(itertools.combinations(range(4), 2))
    rho = stats.spearmanr([sizes[a] + sizes[b] for a, b in pairs], [proto[a, b] for a, b in pairs])
    assert metrics["size_correlation"] == pytest.approx(rho.statistic, abs=1e-12)


def test_collapsed_classes_on_a_regular_simplex():
    c = 5
    vertices = torch.eye(c, dtype=torch.float64) - 1 / c  # a regular simplex in R^c
    labels = torch.arange(c).repeat_interleave(7)
    metrics = class_geometry(vertices[labels] * 3.0, labels, c)  # scale: cosines ignore it
    assert metrics["simplex_deviation"] == pytest.approx(0, abs=1e-12)
    assert metrics["within_cos"] == pytest.approx(1, abs=1e-12)  # collapse
    # Between-class pairs all at -1/(C-1).
    assert metrics["between_cos"] == pytest.approx(-1 / (c - 1), abs=1e-12)


def test_bad_settings():
    with pytest.raises(ValueError, match="n_per_class=1 is invalid"):
        ClassGeometry(n_per_class=1)
    with pytest.raises(ValueError, match="n_classes=1 is invalid"):
        class_geometry(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 1)

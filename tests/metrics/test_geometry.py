"""orbitcl.metrics.geometry against closed forms and configurations computed by hand."""

import math

import pytest
import torch

from orbitcl.losses import functional
from orbitcl.metrics import geometry

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def random_orbits(a=7, k=5, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(a, d, generator=g), torch.randn(a, k, d, generator=g)


def test_identical_views_have_no_spread():
    anchors, _ = random_orbits()
    views = anchors[:, None].expand(-1, 4, -1) * 3.0  # K = 4 copies, scaled: norms do not matter
    assert torch.allclose(geometry.orbit_variance(views), torch.zeros(len(views)), atol=1e-6)
    assert torch.allclose(geometry.pairwise_cosine(views), torch.ones(len(views)))
    assert torch.allclose(geometry.anchor_view_cosine(anchors, views), torch.ones(7, 4))
    assert geometry.alignment(*geometry.view_pairs(views)).item() == pytest.approx(0, abs=1e-6)


def test_two_orbits_by_hand():
    """Orbit 1: views e1, e2 (mean (1/2, 1/2)); orbit 2: views e1, -e1 (mean 0); anchors e1."""
    views = torch.stack([torch.stack([E1, E2]), torch.stack([E1, -E1])])  # (2, 2, 2)
    anchors = torch.stack([E1, E1])
    assert geometry.orbit_variance(views).tolist() == pytest.approx([0.5, 1.0])
    assert geometry.pairwise_cosine(views).tolist() == pytest.approx([0.0, -1.0])
    cosines = geometry.anchor_view_cosine(anchors, views)
    assert torch.allclose(cosines, torch.tensor([[1.0, 0.0], [1.0, -1.0]]))
    # ||e1 - e2||^2 = 2, ||e1 + e1||^2 = 4
    assert geometry.alignment(*geometry.view_pairs(views)).item() == pytest.approx(3.0)
    assert geometry.alignment(*geometry.view_pairs(views), alpha=1).item() == pytest.approx(
        (math.sqrt(2) + 2) / 2
    )
    metrics = geometry.orbit_metrics(anchors, views)
    assert metrics["variance"] == pytest.approx(0.75)
    assert metrics["pairwise_cos"] == pytest.approx(-0.5)
    assert metrics["anchor_view_cos"] == pytest.approx(0.25)
    assert metrics["alignment"] == pytest.approx(3.0)


def test_view_pairs_are_all_pairs_of_distinct_views_of_one_image():
    views = torch.arange(2 * 3 * 1.0).reshape(2, 3, 1)  # image a, view k -> 3a + k
    x, y = geometry.view_pairs(views)
    assert x.squeeze(1).tolist() == [0, 0, 1, 3, 3, 4]
    assert y.squeeze(1).tolist() == [1, 2, 2, 4, 5, 5]


def test_orbit_metrics_agree_with_each_other():
    """For unit vectors: pairwise cos = (K (1 - variance) - 1) / (K - 1) per orbit, and
    alignment over the same pairs = 2 - 2 pairwise cos."""
    anchors, views = random_orbits(k=5)
    variance, pairwise = geometry.orbit_variance(views), geometry.pairwise_cosine(views)
    assert torch.allclose(pairwise, (5 * (1 - variance) - 1) / 4, atol=1e-6)
    alignment = geometry.alignment(*geometry.view_pairs(views))
    assert alignment.item() == pytest.approx(2 - 2 * pairwise.mean().item(), abs=1e-5)
    assert ((variance >= 0) & (variance <= 1)).all()


def test_uniformity_of_three_points_by_hand():
    x = torch.stack([E1, E1, E2])  # squared distances of the 3 pairs: 0, 2, 2
    expected = math.log((1 + 2 * math.exp(-4)) / 3)
    assert geometry.uniformity(x).item() == pytest.approx(expected, rel=1e-6)
    assert geometry.uniformity(torch.stack([E1, E1])).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_regular_simplex_attains_the_lower_bound(n):
    """n unit vectors with mean 0 and equal distances: the least value, -4 n / (n - 1) at t = 2
    (Wang & Isola's -4 as n grows; with n = 2 antipodal points, -8)."""
    centred = torch.eye(n, dtype=torch.float64) - 1.0 / n  # rows sum to 0, all distances equal
    assert geometry.uniformity(centred).item() == pytest.approx(-4 * n / (n - 1), rel=1e-9)


@pytest.mark.parametrize("n,d", [(2, 3), (10, 2), (200, 128), (1000, 8)])
def test_uniformity_is_never_below_its_bound(n, d):
    g = torch.Generator().manual_seed(n)
    for x in (torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 3.0):
        value = geometry.uniformity(x).item()
        assert -4 * n / (n - 1) - 1e-6 <= value <= 0
        if n >= 200:
            assert value >= -4.03  # close to the asymptotic -4 for large sets


def test_uniformity_is_stable_for_large_t():
    x = torch.stack([E1, -E1, E2])
    assert math.isfinite(geometry.uniformity(x, t=1000.0).item())


def test_tension_negatives_drop_self_and_positive_entries():
    n = 3
    t = torch.arange(36.0).reshape(6, 6)  # entry (i, k) -> 6i + k
    negatives = geometry.tension_negatives(t)
    assert len(negatives) == 2 * n * (2 * n - 2)
    expected = [6 * i + k for i in range(6) for k in range(6) if k != i and k != (i + n) % 6]
    assert negatives.tolist() == expected


def test_quantiles_match_torch():
    values = torch.randn(1001, generator=torch.Generator().manual_seed(0))
    qs = [0.0, 0.05, 0.5, 0.95, 1.0]
    assert torch.allclose(geometry.quantiles(values, qs), torch.quantile(values, torch.tensor(qs)))


def test_tension_summary_by_hand():
    t_min = 1e-6
    values = torch.tensor([t_min, t_min, 0.5, 0.5, 1.0], dtype=torch.float32)
    summary = geometry.tension_summary(values, t_min)
    assert summary["mean"] == pytest.approx((2 * t_min + 2.0) / 5)
    assert summary["median"] == pytest.approx(0.5)
    assert summary["p05"] == pytest.approx(t_min)
    assert summary["p95"] == pytest.approx(1.0 - 0.2 * 0.5)  # between 0.5 and 1.0 at 80%
    assert summary["clamped_frac"] == pytest.approx(0.4)


def test_tension_summary_of_a_square_by_hand():
    """Anchors e1, -e2 with positives e2, -e1 (the four corners of a square). For each anchor
    one negative lies at 90 degrees to its direction to the positive (T = 0: clamped to t_min)
    and the other at 45 degrees (T = 1/sqrt 2)."""
    z_a = torch.stack([E1, -E2])
    z_b = torch.stack([E2, -E1])
    t_min = 1e-3
    negatives = geometry.tension_negatives(functional.tension(z_a, z_b, t_min))
    assert len(negatives) == 8
    summary = geometry.tension_summary(negatives, t_min)
    half = 1 / math.sqrt(2)
    assert summary["clamped_frac"] == pytest.approx(0.5)
    assert summary["mean"] == pytest.approx((t_min + half) / 2)
    assert summary["median"] == pytest.approx((t_min + half) / 2)
    assert summary["p05"] == pytest.approx(t_min)
    assert summary["p95"] == pytest.approx(half)

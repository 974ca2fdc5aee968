"""Similarities of positives and negatives (orbitcl.metrics.similarity, docs/geometry.md): the
blocked statistics against direct formulas, configurations with known values, the references."""

import math

import numpy as np
import pytest
import torch

from orbitcl.losses.vrn import vrn
from orbitcl.metrics import similarity


def unit_views(m, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(m, d, generator=g, dtype=dtype), dim=1)
    v = torch.nn.functional.normalize(u + 0.7 * torch.randn(m, d, generator=g, dtype=dtype), dim=1)
    return u, v


def simplex(m):
    """m unit vectors (in R^m, spanning m - 1 dimensions) with every pairwise cosine -1/(m-1)."""
    z = torch.eye(m, dtype=torch.float64) - 1.0 / m
    return z / z.norm(dim=1, keepdim=True)


def direct(u, v):
    """Each kind of pair's values from the full M x M matrices, i != j."""
    off = ~torch.eye(len(u), dtype=torch.bool)
    return {
        "pos": (u * v).sum(1),
        "neg_cross": (u @ v.T)[off],
        "neg_within": torch.cat([(u @ u.T)[off], (v @ v.T)[off]]),
    }


@pytest.mark.parametrize("block", [5, 1024])  # several blocks, one block
def test_statistics_match_direct_formulas(block):
    u, v = unit_views(37, 8)
    sims = similarity.similarities(3 * u, v, block=block, bins=20)  # normalised inside
    stats = sims.statistics()
    for kind, values in direct(u, v).items():
        assert sims.count[kind] == values.numel()
        assert stats[f"{kind}_mean"] == pytest.approx(float(values.mean()), abs=1e-12)
        assert stats[f"{kind}_var"] == pytest.approx(float(values.var(unbiased=False)), abs=1e-12)
        expected, _ = np.histogram(values.numpy(), bins=20, range=(-1, 1))
        assert np.array_equal(sims.hist[kind].numpy().astype(int), expected)
    assert sims.count == {"pos": 37, "neg_cross": 37 * 36, "neg_within": 2 * 37 * 36}


@pytest.mark.parametrize("m", [2, 10, 33])
def test_regular_simplex_has_every_negative_at_minus_one_over_m_minus_one(m):
    z = simplex(m)
    stats = similarity.similarities(z, z.clone(), block=4).statistics()
    assert stats["pos_mean"] == pytest.approx(1.0, abs=1e-12)
    for kind in ("pos", "neg_cross", "neg_within"):
        assert stats[f"{kind}_var"] == pytest.approx(0.0, abs=1e-12)
    for kind in ("neg_cross", "neg_within"):
        assert stats[f"{kind}_mean"] == pytest.approx(similarity.optimum_negative(m), abs=1e-12)
    # Thm 5.2 is tight here: pos_mean = 1 = 1 + (-1/(m-1)) + 1/(m-1).
    bound = similarity.bound_pos_mean(stats["neg_cross_mean"], m)
    assert bound == pytest.approx(stats["pos_mean"], abs=1e-12)


def test_float32_inputs_are_close_to_float64():
    u, v = unit_views(50, 16)
    exact = similarity.similarities(u, v).statistics()
    approx = similarity.similarities(u.float(), v.float()).statistics()
    for key, value in exact.items():
        assert approx[key] == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_thm_5_2_bound_holds_for_any_views(seed):
    g = torch.Generator().manual_seed(seed)
    m = 12
    u = torch.nn.functional.normalize(torch.randn(m, 3, generator=g, dtype=torch.float64), dim=1)
    v = -u if seed == 0 else unit_views(m, 3, seed)[1]  # anti-aligned views, then random
    stats = similarity.similarities(u, v).statistics()
    assert stats["pos_mean"] <= similarity.bound_pos_mean(stats["neg_cross_mean"], m) + 1e-12


def test_vrn_is_the_cross_view_variance_plus_the_squared_offset():
    """docs/geometry.md: VRN = Var + (mean + 1/(n-1))^2 of the cross-view negatives."""
    u, v = unit_views(20, 8)
    n = 60_000
    target = similarity.optimum_negative(n)
    stats = similarity.similarities(u, v).statistics()
    expected = stats["neg_cross_var"] + (stats["neg_cross_mean"] - target) ** 2
    assert float(vrn(u, v, target)) == pytest.approx(expected, abs=1e-12)
    z = simplex(20)  # 0 on a regular simplex with u = v, target -1/(n-1) with n = 20
    assert float(vrn(z, z.clone(), similarity.optimum_negative(20))) == pytest.approx(0, abs=1e-12)


def test_references():
    n, m = 50_000, 256
    low, high = similarity.negative_variance_range(n, m)
    assert low == pytest.approx((n - m) / ((m - 1) * (n - 1) ** 2))
    assert high == pytest.approx(n * low)
    stats = {"neg_cross_mean": -0.01}
    refs = similarity.references(stats, 100, n, m)
    assert refs == {
        "bound_neg_optimum": -1 / (n - 1),
        "bound_pos_mean": 1 - 0.01 + 1 / 99,
        "bound_neg_var_low": low,
        "bound_neg_var_high": high,
    }
    # A full batch (m = n) has no spread to explain: the range collapses to 0.
    assert similarity.negative_variance_range(n, n) == (0.0, 0.0)
    assert math.isclose(similarity.optimum_negative(2), -1.0)


def test_invalid_shapes():
    with pytest.raises(ValueError, match="M >= 2"):
        similarity.similarities(torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="shape"):
        similarity.similarities(torch.ones(4, 3), torch.ones(4, 2))

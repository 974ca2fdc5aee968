"""Across-run comparisons (orbitcl.metrics.across_runs), in float64: linear CKA (biased and
unbiased) against their Gram-matrix formulas and at its invariances; the Procrustes distance
against the direct minimisation over orthogonal maps."""

import pytest
import torch

from orbitcl.metrics.across_runs import linear_cka, linear_cka_matrix, procrustes_distance


def data(m=60, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    shift = torch.randn(d, generator=g, dtype=torch.float64)
    y = torch.randn(m, 5, generator=g, dtype=torch.float64)
    return x, q, shift, y


def hsic_biased(k, l_):
    m = len(k)
    h = torch.eye(m, dtype=torch.float64) - 1.0 / m
    return torch.trace(k @ h @ l_ @ h) / (m - 1) ** 2


def hsic_unbiased(k, l_):
    """Song et al. 2012, written out with explicit sums over index triples' shortcuts."""
    m = len(k)
    kt, lt = k.clone().fill_diagonal_(0), l_.clone().fill_diagonal_(0)
    one = torch.ones(m, dtype=torch.float64)
    value = (
        torch.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((m - 1) * (m - 2))
        - 2 / (m - 2) * (one @ kt @ lt @ one)
    )
    return value / (m * (m - 3))


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_equals_its_gram_formula(unbiased):
    x, _, _, y = data()
    hsic = hsic_unbiased if unbiased else hsic_biased
    # The kernels of the centred data (the biased HSIC centres again, without effect; the
    # unbiased estimator is not translation invariant, so linear_cka centres first).
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, l_ = xc @ xc.T, yc @ yc.T
    expected = hsic(k, l_) / (hsic(k, k) * hsic(l_, l_)).sqrt()
    assert linear_cka(x, y, unbiased=unbiased) == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_is_1_under_rotation_scaling_and_translation(unbiased):
    x, q, shift, _ = data()
    assert linear_cka(x, x @ q, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x + shift, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 0.2 * x @ q + shift, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)


def test_cka_of_independent_data_is_small():
    x, _, _, y = data(m=2000)
    assert linear_cka(x, y) < 0.05


def test_procrustes_is_0_under_rotation():
    x, q, shift, _ = data()
    assert procrustes_distance(x, 2.5 * x @ q + shift) == pytest.approx(0.0, abs=1e-6)


def test_procrustes_equals_the_direct_formula():
    x, _, _, _ = data(seed=3)
    y = data(seed=4)[0]
    xn, yn = x - x.mean(0), y - y.mean(0)
    xn, yn = xn / xn.norm(), yn / yn.norm()
    u, _, vh = torch.linalg.svd(yn.T @ xn)
    rotation = u @ vh  # argmin_Q ||xn - yn Q||_F over orthogonal Q
    direct = (xn - yn @ rotation).norm()
    assert procrustes_distance(x, y) == pytest.approx(float(direct), rel=1e-10)
    # no orthogonal map does better
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        other, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
        assert (xn - yn @ other).norm() >= direct


def test_rows_must_match():
    x, _, _, _ = data()
    with pytest.raises(ValueError, match="same images"):
        linear_cka(x, x[:-1])


def test_the_cka_matrix_equals_cka_on_each_pair():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(50, 6, generator=g, dtype=torch.float64)
    xs = [base, base @ torch.randn(6, 9, generator=g, dtype=torch.float64), torch.randn(50, 4)]
    matrix = linear_cka_matrix(xs)
    for i, x in enumerate(xs):
        for j, y in enumerate(xs):
            assert matrix[i][j] == pytest.approx(linear_cka(x, y), rel=1e-12), (i, j)
    assert matrix[0][0] == pytest.approx(1.0, abs=1e-12) and matrix[0][1] == matrix[1][0]
    with pytest.raises(ValueError, match="same images"):
        linear_cka_matrix([base, base[:-1]])

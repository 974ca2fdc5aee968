"""Spectrum metrics (orbitcl.metrics.spectrum), in float64: RankMe against its formula on a
matrix of known spectrum and at its closed forms (isotropic: d, rank one: 1), alpha-ReQ on exact
power-law spectra, LiDAR on orbits that differ along one direction only and against a direct
per-anchor loop."""

import math

import pytest
import torch
from helpers import reference_spectrum

from orbitcl.metrics import spectrum


def with_spectrum(sigma: torch.Tensor, m: int, seed: int = 0) -> torch.Tensor:
    """A centred (m, d) matrix whose singular values are sigma (d,): U diag(sigma) V^T with the
    columns of U orthonormal and orthogonal to the ones vector."""
    g = torch.Generator().manual_seed(seed)
    d = len(sigma)
    a = torch.randn(m, d + 1, generator=g, dtype=torch.float64)
    a[:, 0] = 1.0  # the first Householder column spans the mean direction
    q, _ = torch.linalg.qr(a)
    u = q[:, 1:]  # (m, d), orthogonal to 1
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return u @ torch.diag(sigma) @ v.T + torch.randn(d, generator=g, dtype=torch.float64)


def test_singular_values_of_a_given_spectrum():
    sigma = torch.tensor([5.0, 3.0, 2.0, 0.5, 0.1], dtype=torch.float64)
    torch.testing.assert_close(spectrum.singular_values(with_spectrum(sigma, 40)), sigma)


def test_rankme_equals_its_formula():
    sigma = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.01], dtype=torch.float64)
    p = sigma / sigma.sum() + 1e-7
    expected = math.exp(-(p * p.log()).sum().item())
    assert spectrum.rankme(with_spectrum(sigma, 50)) == pytest.approx(expected, rel=1e-10)


def test_rankme_is_d_for_isotropic_and_1_for_rank_one():
    d = 16
    isotropic = with_spectrum(torch.ones(d, dtype=torch.float64), 100)
    assert spectrum.rankme(isotropic) == pytest.approx(d, rel=1e-5)
    g = torch.Generator().manual_seed(1)
    rank_one = torch.randn(100, 1, generator=g, dtype=torch.float64) * torch.randn(
        1, d, generator=g, dtype=torch.float64
    )
    assert spectrum.rankme(rank_one) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.3])
def test_alpha_req_recovers_a_power_law(alpha):
    d = 64
    k = torch.arange(1, d + 1, dtype=torch.float64)
    sigma = k.pow(-alpha / 2)  # lambda_k = sigma_k^2 / (M - 1) ~ k^-alpha
    z = with_spectrum(sigma, 300)
    assert spectrum.alpha_req(z) == pytest.approx(alpha, abs=1e-3)
    assert spectrum.alpha_req(z, start=5, end=40) == pytest.approx(alpha, abs=1e-3)


def test_alpha_req_leaves_out_the_numerically_zero_tail():
    sigma = torch.cat([torch.arange(1, 11, dtype=torch.float64).pow(-1.0), torch.zeros(6)])
    assert spectrum.alpha_req(with_spectrum(sigma, 80)) == pytest.approx(2.0, abs=1e-3)
    with pytest.raises(ValueError, match="start=0"):
        spectrum.power_law_exponent(sigma, start=0)


def test_lidar_is_1_on_orbits_that_differ_along_one_direction():
    g = torch.Generator().manual_seed(0)
    a, k, d = 30, 8, 12
    direction = torch.randn(d, generator=g, dtype=torch.float64)
    noise = torch.randn(k, d, generator=g, dtype=torch.float64)  # the same spread for all
    views = torch.randn(a, 1, 1, generator=g, dtype=torch.float64) * direction + noise
    assert spectrum.lidar(views) == pytest.approx(1.0, abs=1e-4)


def test_lidar_equals_a_direct_loop():
    g = torch.Generator().manual_seed(2)
    a, k, d, delta, eps = 7, 5, 4, 1e-4, 1e-8
    views = torch.randn(a, k, d, generator=g, dtype=torch.float64)
    mu = torch.stack([views[i].mean(0) for i in range(a)])
    grand = mu.mean(0)
    sb = sum(torch.outer(mu[i] - grand, mu[i] - grand) for i in range(a)) / (a - 1)
    sw = sum(
        torch.outer(views[i, j] - mu[i], views[i, j] - mu[i]) for i in range(a) for j in range(k)
    ) / (a * (k - 1)) + delta * torch.eye(d, dtype=torch.float64)
    root = torch.linalg.cholesky(sw)  # same eigenvalues as Sigma_w^-1/2 Sigma_b Sigma_w^-1/2
    lam = torch.linalg.eigvals(torch.linalg.solve(root, torch.linalg.solve(root, sb).T)).real
    p = lam / lam.sum() + eps
    expected = math.exp(-(p * p.log()).sum().item())
    assert spectrum.lidar(views) == pytest.approx(expected, rel=1e-8)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="need \\(M >= 2, d\\)"):
        spectrum.rankme(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="anchors >= 2, views >= 2"):
        spectrum.lidar(torch.zeros(5, 1, 3))


# Peers side by side. Neither stable-pretraining nor reptrix is installed; their formulas are
# written out here from their sources, each difference of convention named and shown to be the
# whole gap.


def stable_pretraining_rankme(z: torch.Tensor) -> float:
    """stable_pretraining/callbacks/rankme.py (RankMe.on_validation_batch_end): the singular
    values of the embeddings as they are, ``p = s / sum(s) + 1e-5``."""
    s = torch.linalg.svdvals(z)
    p = s / s.sum() + 1e-5
    return math.exp(-(p * p.log()).sum().item())


def test_rankme_against_stable_pretraining():
    g = torch.Generator().manual_seed(5)
    z = (
        torch.randn(300, 24, generator=g, dtype=torch.float64)
        @ torch.randn(24, 24, generator=g, dtype=torch.float64)
        + 20.0
    )  # an offset: a mean direction that centring removes
    centred = z - z.mean(0)
    # the two conventions (centring, eps) are the whole gap
    assert spectrum.rankme(z, eps=1e-5) == pytest.approx(
        stable_pretraining_rankme(centred), rel=1e-10
    )
    assert abs(spectrum.rankme(z) - stable_pretraining_rankme(z)) > 1.0  # uncentred: not small
    # reptrix's rankme takes the entropy of the eigenvalues sigma^2 (explained variance ratios),
    # which weighs the leading directions more: a smaller rank on the same embeddings
    sigma = spectrum.singular_values(z)
    assert spectrum.spectral_entropy_rank(sigma.square(), 1e-7) < spectrum.rankme(z) - 1.0


def stable_pretraining_lidar(views: torch.Tensor, delta=1e-4, eps=1e-8) -> float:
    """stable_pretraining/callbacks/lidar.py (LiDAR._compute_lidar), in float64: the same
    Sigma_b (1/(A-1)) and Sigma_w (1/(A(K-1)) + delta I), Sigma_w's eigenvalues clamped at eps,
    the LDA eigenvalues at 0, and ``p = (lambda + eps) / sum(lambda + eps)``."""
    a, k, d = views.shape
    means = views.mean(1)
    centred = means - means.mean(0)
    sb = centred.T @ centred / (a - 1)
    within = (views - means[:, None]).reshape(-1, d)
    sw = within.T @ within / (a * (k - 1)) + delta * torch.eye(d, dtype=torch.float64)
    w, v = torch.linalg.eigh(sw)
    inv_sqrt = (v * w.clamp(min=eps).rsqrt()) @ v.T
    lda = inv_sqrt @ sb @ inv_sqrt
    lam = torch.linalg.eigvalsh((lda + lda.T) / 2).clamp(min=0.0)
    p = (lam + eps) / (lam + eps).sum()
    return math.exp(-(p * p.log()).sum().item())


def test_lidar_against_stable_pretraining():
    g = torch.Generator().manual_seed(6)
    a, k, d = 40, 4, 16
    views = torch.randn(a, 1, d, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
        a, k, d, generator=g, dtype=torch.float64
    )
    peer = stable_pretraining_lidar(views)
    ours = spectrum.lidar(views)
    # the same delta and eps; only the normalisation of p differs, by O(d eps log eps)
    assert ours == pytest.approx(peer, rel=1e-4)
    assert ours != peer
    # and that normalisation is the whole gap: with stable-pretraining's p, the same number
    a_, k_, d_ = views.shape
    means = views.mean(1)
    sb = (means - means.mean(0)).T @ (means - means.mean(0)) / (a_ - 1)
    within = (views - means[:, None]).reshape(-1, d_)
    sw = within.T @ within / (a_ * (k_ - 1)) + 1e-4 * torch.eye(d_, dtype=torch.float64)
    w, v = torch.linalg.eigh(sw)
    inv_sqrt = (v * w.rsqrt()) @ v.T
    lam = torch.linalg.eigvalsh(inv_sqrt @ sb @ inv_sqrt).clamp(min=0.0)
    renormalised = spectrum.spectral_entropy_rank(lam + 1e-8, 0.0)  # p = (lam + eps) / sum
    assert renormalised == pytest.approx(peer, rel=1e-10)


def reptrix_alpha(eigen: torch.Tensor) -> float:
    """reptrix/alpha.py (get_powerlaw with get_alpha's fit_range = np.arange(5, 100)), by the
    alpha-ReQ authors: weighted least squares of log eigen on [-log k, 1] with weights 1/k over
    k = 6 .. 100, solved by the normal equations."""
    trange = torch.arange(5, 100)
    y = eigen.abs().log()[trange][:, None]
    k = (trange + 1).double()
    x = torch.stack([-k.log(), torch.ones_like(k)], dim=1)
    w = (1.0 / k)[:, None]
    b = torch.linalg.solve(x.T @ (x * w), (w * x).T @ y).flatten()
    return float(b[0])


def test_alpha_req_against_the_authors_fit():
    g = torch.Generator().manual_seed(7)
    # not a power law: a random spectrum, so the range and the weights matter
    z = torch.randn(400, 128, generator=g, dtype=torch.float64) * torch.rand(
        128, generator=g, dtype=torch.float64
    ).pow(3)
    lam = spectrum.eigenvalues(z)
    ratio = lam / lam.sum()  # reptrix fits PCA's explained variance ratios: the same slope
    assert spectrum.alpha_req(z) == pytest.approx(reptrix_alpha(ratio), rel=1e-10)
    # an unweighted fit over every rank, the convention before, gives another number
    assert abs(spectrum.alpha_req(z, start=1, end=None) - reptrix_alpha(ratio)) > 0.01


# The shortcuts (LiDAR by a Cholesky whitening and the smaller Gram matrix; one SVD shared by
# RankMe, alpha-ReQ and the log spectrum) against the direct (d, d) computation of
# tests/helpers/reference_spectrum.py, on both sides of M = d and A = d.


def orbit_cases():
    """(name, views (A, K, d)): M = A K below and above d, A below and above d, and orbits whose
    within-class scatter has rank 2 < d (delta alone makes Sigma_w invertible)."""
    g = torch.Generator().manual_seed(11)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    low = randn(9, 1, 48) + randn(9, 3, 2) @ randn(2, 48)  # rank(within) <= 2
    return [
        ("M < d", randn(6, 4, 40) * randn(40).exp()),
        ("A < d < M", randn(12, 5, 20) + 2.0),
        ("d < A", randn(40, 3, 10) @ randn(10, 10)),
        ("rank-deficient within", low),
    ]


@pytest.mark.parametrize("case", range(4))
def test_lidar_equals_the_direct_computation(case):
    _, views = orbit_cases()[case]
    d = views.shape[-1]
    expected = reference_spectrum.lidar_eigenvalues(views)
    values = spectrum.lidar_eigenvalues(views)
    assert values.shape == (d,)
    # every eigenvalue, the d - min(A, d) zeros included, to rounding of the largest
    torch.testing.assert_close(values, expected, rtol=0, atol=1e-10 * expected.abs().max())
    assert spectrum.lidar(views) == pytest.approx(reference_spectrum.lidar(views), rel=1e-9)
    ridge = spectrum.lidar(views, delta=1e-2, eps=1e-6)
    assert ridge == pytest.approx(reference_spectrum.lidar(views, 1e-2, 1e-6), rel=1e-9)


@pytest.mark.parametrize("case", range(4))
def test_view_metrics_equal_the_direct_computation(case):
    _, views = orbit_cases()[case]
    flat = views.flatten(0, 1)
    values, log_spectrum = spectrum.view_metrics(views, start=2, end=30)
    sigma = reference_spectrum.singular_values(flat)
    lam = sigma.square() / (len(flat) - 1)
    assert values["rankme"] == pytest.approx(reference_spectrum.smooth_rank(sigma, 1e-7), rel=1e-9)
    assert values["alpha"] == pytest.approx(spectrum.power_law_exponent(lam, 2, 30), rel=1e-9)
    assert values["lidar"] == pytest.approx(reference_spectrum.lidar(views), rel=1e-9)
    # the functions the callback called before, one SVD each: the same numbers
    assert values["rankme"] == spectrum.rankme(flat)
    assert values["alpha"] == spectrum.alpha_req(flat, 2, 30)
    assert torch.equal(log_spectrum, spectrum.normalised_log_spectrum(flat))


def test_lidar_without_a_ridge_on_rank_deficient_orbits_is_refused():
    _, views = orbit_cases()[3]
    with pytest.raises(ValueError, match="delta=0.0 is invalid.*need delta > 0"):
        spectrum.lidar(views, delta=0.0)

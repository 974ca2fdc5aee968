"""The SimSiam collapse measure (orbitcl.metrics.collapse) against its closed forms: 0 for
collapsed embeddings, 1/sqrt(d) for normalised isotropic Gaussians, sqrt(r)/d on r axes, and a
naive float64 reference written from the definition."""

import math

import pytest
import torch

from orbitcl.metrics.collapse import collapse_std, collapse_threshold


def reference(z: torch.Tensor) -> float:
    """mean_j std_i (z_ij / ||z_i||), loops over dimensions, float64."""
    z = z.double()
    unit = z / z.norm(dim=1, keepdim=True)
    m, d = unit.shape
    stds = []
    for j in range(d):
        column = unit[:, j]
        mean = column.sum() / m
        stds.append(math.sqrt(float(((column - mean) ** 2).sum()) / (m - 1)))
    return sum(stds) / d


def tolerance(m: int, d: int) -> float:
    """How far from 1/sqrt(d), relative, the measure of M normalised Gaussians may be. Each
    coordinate x_j has E[x_j^2] = 1/d and Var(x_j^2) ~ 2/d^2, so its sample variance v_j has
    Var(v_j) ~ 2/(M d^2) and its std sqrt(v_j) (delta method) Var ~ 1/(2 M d), a bias of
    -1/(8 M) relative; the mean over d coordinates (negatively correlated on the sphere) has a
    relative standard deviation <= 1/sqrt(2 M d). Six of them and the bias."""
    return 6 / math.sqrt(2 * m * d) + 1 / (8 * m)


def test_collapsed_embeddings_give_zero():
    torch.manual_seed(0)
    point = torch.randn(1, 16)
    z = point.repeat(300, 1) * torch.rand(300, 1)  # one direction, any norms
    # Only the float32 rounding of the scaled copies (2^-24 relative) is left of a spread.
    assert collapse_std(z) == pytest.approx(0.0, abs=1e-7)
    assert collapse_std(point.double().repeat(300, 1)) == 0.0


@pytest.mark.parametrize("m, d", [(2000, 16), (1000, 128)])
def test_isotropic_gaussians_give_one_over_sqrt_d(m, d):
    torch.manual_seed(1)
    value = collapse_std(torch.randn(m, d))
    assert abs(value * math.sqrt(d) - 1) <= tolerance(m, d)
    assert tolerance(m, d) < 0.06  # the test tells 1/sqrt(d) from the r-axes value below


def test_embeddings_on_r_axes_give_sqrt_r_over_d():
    torch.manual_seed(2)
    m, d, r = 2000, 64, 4
    z = torch.zeros(m, d)
    z[:, :r] = torch.randn(m, r)  # uniform on the sphere of r axes: sqrt(r/d) of 1/sqrt(d)
    assert abs(collapse_std(z) * d / math.sqrt(r) - 1) <= tolerance(m, r)


def test_it_matches_the_reference_and_ignores_scale():
    torch.manual_seed(3)
    z = torch.randn(50, 7) + 0.5
    assert collapse_std(z) == pytest.approx(reference(z), rel=1e-12)
    assert collapse_std(z * torch.rand(50, 1) * 10) == pytest.approx(reference(z), rel=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"z of shape \(1, 4\) is invalid"):
        collapse_std(torch.randn(1, 4))
    with pytest.raises(ValueError, match="threshold_fraction=0 is invalid"):
        collapse_threshold(0, 4)
    assert collapse_threshold(0.2, 64) == pytest.approx(0.025)

"""VICReg against a float64 reference written from the paper's formula, lightly's VICRegLoss
side by side, and 2 gloo processes against one (the batch statistics of the global batch)."""

import pytest
import torch
from helpers.gloo_ranks import WORLD, global_views, rows, spawn
from lightly.loss import VICRegLoss as LightlyVICRegLoss

from orbitcl.losses import VICRegLoss
from orbitcl.losses.vicreg import vicreg


def reference(z_a, z_b, lam=25.0, mu=25.0, nu=1.0, eps=1e-4):
    """Bardes et al. 2022, Algorithm 1, entry by entry with loops: lambda s + mu (v_a + v_b) +
    nu (c_a + c_b), unbiased variances and covariances."""
    n, d = z_a.shape
    s = sum((z_a[i, j] - z_b[i, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def v(z):
        total = 0.0
        for j in range(d):
            mean = sum(z[i, j] for i in range(n)) / n
            var = sum((z[i, j] - mean) ** 2 for i in range(n)) / (n - 1)
            total = total + torch.clamp(1 - torch.sqrt(var + eps), min=0)
        return total / d

    def c(z):
        mean = [sum(z[i, j] for i in range(n)) / n for j in range(d)]
        total = 0.0
        for j in range(d):
            for k in range(d):
                if j != k:
                    cov = sum((z[i, j] - mean[j]) * (z[i, k] - mean[k]) for i in range(n))
                    total = total + (cov / (n - 1)) ** 2
        return total / d

    return lam * s + mu * (v(z_a) + v(z_b)) + nu * (c(z_a) + c(z_b))


def views(n, d, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (scale * torch.randn(n, d, generator=g, dtype=torch.float64)).requires_grad_()
        for _ in range(2)
    ]


@pytest.mark.parametrize(("n", "d", "scale"), [(6, 4, 0.3), (5, 3, 2.0), (8, 5, 0.8)])
def test_matches_the_papers_formula_values_and_gradients(n, d, scale):
    """Scales 0.3 (every hinge active), 2.0 (none) and 0.8 (some): float64, values and
    gradients."""
    z_a, z_b = views(n, d, scale)
    ours = VICRegLoss()(z_a, z_b)
    ref = reference(z_a, z_b)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(ours, (z_a, z_b))
    g_ref = torch.autograd.grad(ref, (z_a, z_b))
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_lightly_halves_the_variance_term_and_that_is_the_whole_gap():
    """lightly (and the authors' code) average the two views' hinges where Algorithm 1 sums
    them: lightly(mu) = ours(mu / 2) exactly, and ours - lightly = mu (v_a + v_b) / 2."""
    z_a, z_b = views(16, 8, 0.5)
    lightly = LightlyVICRegLoss()(z_a, z_b)
    ours = vicreg(z_a, z_b)
    variance_terms = vicreg(z_a, z_b, invariance=0.0, variance=1.0, covariance=0.0)
    assert variance_terms > 0.1  # the hinges are active, so the convention matters here
    assert (ours - lightly).abs() > 1.0
    torch.testing.assert_close(ours - lightly, 25.0 * variance_terms / 2, rtol=1e-12, atol=1e-12)
    halved = vicreg(z_a, z_b, variance=12.5)
    torch.testing.assert_close(halved, lightly, rtol=1e-12, atol=1e-12)
    for a, b in zip(
        torch.autograd.grad(halved, (z_a, z_b)),
        torch.autograd.grad(lightly, (z_a, z_b)),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_half_precision_is_computed_in_float32():
    z_a, z_b = (z.detach().to(torch.bfloat16) for z in views(8, 4, 0.5))
    loss = vicreg(z_a, z_b)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, vicreg(z_a.float(), z_b.float()))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"invariance": -1.0}, "invariance"),
        ({"variance": float("nan")}, "variance"),
        ({"covariance": -0.1}, "covariance"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        VICRegLoss(**kwargs)


def test_batch_of_one_or_mismatched_views_is_refused():
    with pytest.raises(ValueError, match="N >= 2"):
        vicreg(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="same shape"):
        vicreg(torch.randn(4, 4), torch.randn(4, 3))


def _rank_vicreg(rank: int) -> tuple:
    z_a, z_b = (z[rows(rank)].clone().requires_grad_() for z in global_views())
    loss = VICRegLoss(gather_distributed=True)(0.2 * z_a, 0.2 * z_b)
    return (loss.detach(), *torch.autograd.grad(loss, (z_a, z_b)))


def test_two_processes_equal_one_on_the_global_batch(tmp_path):
    """2 gloo processes, float64: every rank's loss is the one-process loss of the concatenated
    batch, and each rank's gradient / WORLD is its rows of the one-process gradient (DDP's mean
    then gives the one-process gradient). Per-rank statistics would differ."""
    per_rank = spawn(_rank_vicreg, tmp_path)
    z_a, z_b = (z.requires_grad_() for z in global_views())
    loss = VICRegLoss()(0.2 * z_a, 0.2 * z_b)
    grad_a, grad_b = torch.autograd.grad(loss, (z_a, z_b))
    for rank, (rank_loss, rank_grad_a, rank_grad_b) in enumerate(per_rank):
        torch.testing.assert_close(rank_loss, loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rank_grad_a / WORLD, grad_a[rows(rank)], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(rank_grad_b / WORLD, grad_b[rows(rank)], rtol=1e-9, atol=1e-12)
    local = [vicreg(*(0.2 * z[rows(r)] for z in global_views())) for r in range(WORLD)]
    assert (torch.stack(local).mean() - loss.detach()).abs() > 1e-3

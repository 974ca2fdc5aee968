"""Barlow Twins under DDP: 2 gloo processes equal one on the global batch, and lightly's
per-rank standardisation is the whole gap to lightly (the float64 reference and the one-process
comparison with lightly are in test_nonneg.py)."""

import torch
from helpers.gloo_ranks import WORLD, global_views, rows, spawn
from lightly.loss import BarlowTwinsLoss as LightlyBarlowTwins

from orbitcl.losses import BarlowTwinsLoss
from orbitcl.losses.barlow_twins import barlow_twins, cross_correlation
from orbitcl.losses.vicreg import off_diagonal

LAMBDA = 0.3  # large enough that the off-diagonal term matters in the comparisons


def _rank_barlow(rank: int) -> tuple:
    z_a, z_b = (z[rows(rank)].clone().requires_grad_() for z in global_views())
    loss = BarlowTwinsLoss(LAMBDA, gather_distributed=True)(z_a, z_b)
    lightly = LightlyBarlowTwins(LAMBDA, gather_distributed=True)(z_a.detach(), z_b.detach())
    return (loss.detach(), *torch.autograd.grad(loss, (z_a, z_b)), lightly)


def test_two_processes_equal_one_and_lightly_averages_the_ranks_matrices(tmp_path):
    """float64: every rank's loss is the one-process loss of the concatenated batch and each
    rank's gradient / WORLD its rows of the one-process gradient. lightly standardises each
    rank's rows with their own statistics and averages the ranks' C: its loss is exactly the
    formula on mean_r C_r, which is not the one-process loss."""
    per_rank = spawn(_rank_barlow, tmp_path)
    z_a, z_b = (z.requires_grad_() for z in global_views())
    loss = BarlowTwinsLoss(LAMBDA)(z_a, z_b)
    grad_a, grad_b = torch.autograd.grad(loss, (z_a, z_b))
    local = [cross_correlation(z_a[rows(r)], z_b[rows(r)]) for r in range(WORLD)]
    c = torch.stack(local).mean(0).detach()  # (d, d): lightly's all-reduced matrix
    averaged = (1 - c.diagonal()).square().sum() + LAMBDA * off_diagonal(c).square().sum()
    for rank, (rank_loss, rank_grad_a, rank_grad_b, lightly) in enumerate(per_rank):
        torch.testing.assert_close(rank_loss, loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rank_grad_a / WORLD, grad_a[rows(rank)], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(rank_grad_b / WORLD, grad_b[rows(rank)], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(lightly, averaged, rtol=1e-12, atol=1e-12)
    assert (averaged - loss.detach()).abs() > 1e-2  # per-rank statistics are another loss
    one_process = LightlyBarlowTwins(LAMBDA)(z_a.detach(), z_b.detach())
    torch.testing.assert_close(barlow_twins(z_a.detach(), z_b.detach(), LAMBDA), one_process)

"""Tests of ORL's relatives against naive float64 references: the debiased (Chuang et al. 2020)
and hard-negative (Robinson et al. 2021) contrastive losses, FaceNet's semi-hard triplet loss
and Hadsell et al.'s margin contrastive loss."""

import math

import pytest
import torch
from helpers.loss_cases import assert_all_close, degenerate, value_and_grads, views
from helpers.reference_reweighted import (
    naive_debiased,
    naive_hard_negative,
    naive_hard_negative_terms,
    naive_margin,
    naive_triplet,
    naive_triplet_choices,
)

from orbitcl.losses import (
    DebiasedContrastiveLoss,
    HardNegativeLoss,
    MarginContrastiveLoss,
    TripletSemiHardLoss,
    functional,
)
from orbitcl.losses.debiased import debiased
from orbitcl.losses.hard_negative import hard_negative
from orbitcl.losses.margin import margin_contrastive
from orbitcl.losses.triplet import triplet_semihard

CASES = [(2, 3, 0.1), (5, 8, 0.5), (16, 32, 1.0), (7, 4, 0.2)]  # (N, d, temperature)


def aligned_views(n, d, noise, seed=0):
    """Views of n images that differ by `noise`: positives close, so the debiased estimate
    `sum neg - tau_plus M pos` can fall below its floor."""
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(n, d, generator=g, dtype=torch.float64)
    z_b = z_a + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
    return z_a.requires_grad_(), z_b.requires_grad_()


# --- debiased and hard-negative --------------------------------------------------------------


@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_debiased_matches_reference(n, d, temperature, tau_plus):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(debiased(z_a, z_b, temperature, tau_plus), z_a, z_b),
        value_and_grads(naive_debiased(z_a, z_b, temperature, tau_plus), z_a, z_b),
    )


@pytest.mark.parametrize("beta, tau_plus", [(1.0, 0.1), (0.5, 0.0), (2.0, 0.3), (0.0, 0.1)])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_hard_negative_matches_reference(n, d, temperature, beta, tau_plus):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(hard_negative(z_a, z_b, temperature, beta, tau_plus), z_a, z_b),
        value_and_grads(naive_hard_negative(z_a, z_b, temperature, beta, tau_plus), z_a, z_b),
    )


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("noise", [0.2, 0.4])
def test_floor_of_the_debiased_estimate_matches_reference(beta, noise):
    """Close positives and a large tau_plus: some anchors' estimate falls below the floor
    M e^{-1/t} (even below 0), others not; values and gradients still match the clamp."""
    z_a, z_b = aligned_views(16, 8, noise)
    temperature, tau_plus = 0.5, 0.2
    floored = [
        bool(estimate < floor)
        for _, estimate, floor in naive_hard_negative_terms(z_a, z_b, temperature, beta, tau_plus)
    ]
    assert any(floored) and not all(floored), floored  # both branches are exercised
    assert_all_close(
        value_and_grads(hard_negative(z_a, z_b, temperature, beta, tau_plus), z_a, z_b),
        value_and_grads(naive_hard_negative(z_a, z_b, temperature, beta, tau_plus), z_a, z_b),
    )
    if beta == 0:
        assert_all_close(
            value_and_grads(debiased(z_a, z_b, temperature, tau_plus), z_a, z_b),
            value_and_grads(naive_debiased(z_a, z_b, temperature, tau_plus), z_a, z_b),
        )


def test_debiased_without_prior_is_ntxent():
    z_a, z_b = views(16, 32)
    assert_all_close(
        value_and_grads(debiased(z_a, z_b, 0.5, tau_plus=0.0), z_a, z_b),
        value_and_grads(functional.ntxent(z_a, z_b, 0.5), z_a, z_b),
    )


def test_hard_negative_without_concentration_is_debiased():
    z_a, z_b = views(16, 32)
    assert_all_close(
        value_and_grads(hard_negative(z_a, z_b, 0.5, beta=0.0, tau_plus=0.1), z_a, z_b),
        value_and_grads(debiased(z_a, z_b, 0.5, tau_plus=0.1), z_a, z_b),
    )


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda z_a, z_b, t: debiased(z_a, z_b, t, 0.1),
        lambda z_a, z_b, t: hard_negative(z_a, z_b, t, 1.0, 0.1),
    ],
    ids=["debiased", "hard_negative"],
)
def test_small_temperature_does_not_overflow(loss_fn):
    """At t = 0.005, e^{1/t} = e^200 overflows float32 (and float64 at t < 1/710): the log-space
    form stays finite, and float32 agrees with float64."""
    z_a, z_b = views(16, 32, torch.float32)
    loss = loss_fn(z_a, z_b, 0.005)
    for x in value_and_grads(loss, z_a, z_b):
        assert torch.isfinite(x).all()
    z_a64, z_b64 = (z.detach().double().requires_grad_() for z in (z_a, z_b))
    torch.testing.assert_close(loss.double(), loss_fn(z_a64, z_b64, 0.005), rtol=1e-4, atol=1e-4)


# --- triplet -----------------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.2, 1.0])
@pytest.mark.parametrize("n, d", [(n, d) for n, d, _ in CASES])
def test_triplet_matches_reference(n, d, margin):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(triplet_semihard(z_a, z_b, margin), z_a, z_b),
        value_and_grads(naive_triplet(z_a, z_b, margin), z_a, z_b),
    )


def test_triplet_cases_exercise_semi_hard_and_fallback_negatives():
    """Among the reference cases, some anchors have a semi-hard negative and some fall back."""
    kinds = {
        semi_hard
        for n, d, _ in CASES
        for _, _, semi_hard in naive_triplet_choices(*(z.detach() for z in views(n, d)))
    }
    assert kinds == {True, False}


def test_triplet_fallback_is_the_farthest_negative():
    """Views of each image at opposite poles: d(a, p) = 4, no negative is farther, so each anchor
    takes its farthest negative, d(a, n*) = max_k d(a, k)."""
    z_a, z_b = views(6, 8)
    z_b = (-z_a).detach().requires_grad_()
    z = torch.nn.functional.normalize(torch.cat([z_a, z_b]).detach(), dim=1)
    sq_dist = torch.cdist(z, z).square()  # (12, 12)
    sq_dist[torch.arange(12), torch.arange(12).roll(6)] = -1  # not the positive
    expected = torch.relu(4 - sq_dist.max(1).values + 1.0).mean()
    assert all(not semi_hard for *_, semi_hard in naive_triplet_choices(z_a, z_b))
    loss = triplet_semihard(z_a, z_b, margin=1.0)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-10, atol=1e-10)
    assert_all_close(
        value_and_grads(loss, z_a, z_b),
        value_and_grads(naive_triplet(z_a, z_b, 1.0), z_a, z_b),
    )


# --- margin ------------------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.5, 1.0, 1.9])
@pytest.mark.parametrize("n, d", [(n, d) for n, d, _ in CASES])
def test_margin_matches_reference(n, d, margin):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(margin_contrastive(z_a, z_b, margin), z_a, z_b),
        value_and_grads(naive_margin(z_a, z_b, margin), z_a, z_b),
    )


def test_margin_weighs_positives_and_negatives_alike():
    """All views identical (collapse): every positive term is 0, every negative term m^2 / 2, so
    the loss is m^2 / 2 whatever N (the negatives are averaged, not summed)."""
    for n in (2, 8):
        z = torch.randn(1, 4, dtype=torch.float64).expand(n, -1)
        torch.testing.assert_close(margin_contrastive(z, z, 0.8), torch.tensor(0.32).double())


# --- every relative ----------------------------------------------------------------------------

LOSSES = {  # name: (ours, naive, keyword arguments after z_a, z_b)
    "debiased": (debiased, naive_debiased, {"temperature": 0.5, "tau_plus": 0.1}),
    "hard_negative": (
        hard_negative,
        naive_hard_negative,
        {"temperature": 0.5, "beta": 1.0, "tau_plus": 0.1},
    ),
    "triplet": (triplet_semihard, naive_triplet, {"margin": 0.2}),
    "margin": (margin_contrastive, naive_margin, {"margin": 1.0}),
}


@pytest.mark.parametrize("images", [slice(0, 3), slice(3, 7), slice(7, 8), slice(None)])
@pytest.mark.parametrize("name", list(LOSSES))
def test_row_subset_matches_reference(name, images):
    """The loss of some images' anchors against all 2N columns: what one DDP rank computes."""
    ours, naive, kwargs = LOSSES[name]
    z_a, z_b = views(8, 16)
    assert_all_close(
        value_and_grads(ours(z_a, z_b, images=images, **kwargs), z_a, z_b),
        value_and_grads(naive(z_a, z_b, images=images, **kwargs), z_a, z_b),
    )


@pytest.mark.parametrize("name", list(LOSSES))
def test_row_subsets_average_to_the_full_loss(name):
    ours, _, kwargs = LOSSES[name]
    z_a, z_b = views(12, 16)
    parts = [ours(z_a, z_b, images=slice(r, r + 4), **kwargs) for r in (0, 4, 8)]
    assert_all_close(
        value_and_grads(torch.stack(parts).mean(), z_a, z_b),
        value_and_grads(ours(z_a, z_b, **kwargs), z_a, z_b),
    )


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize(
    "case", ["identical_views", "duplicate_rows", "collapse", "zero_difference_pair"]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_stay_finite(name, case, dtype):
    ours, _, kwargs = LOSSES[name]
    z_a, z_b = degenerate(case, dtype)
    for x in value_and_grads(ours(z_a, z_b, **kwargs), z_a, z_b):
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_upcast(name, dtype):
    ours, _, kwargs = LOSSES[name]
    z_a, z_b = (z.detach().to(dtype) for z in views(16, 32, torch.float32))
    loss = ours(z_a, z_b, **kwargs)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, ours(z_a.float(), z_b.float(), **kwargs))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(ours(z_a.float(), z_b.float(), **kwargs), loss)


MODULES = {
    "debiased": DebiasedContrastiveLoss,
    "hard_negative": HardNegativeLoss,
    "triplet": TripletSemiHardLoss,
    "margin": MarginContrastiveLoss,
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_modules_equal_functional(name):
    ours, _, kwargs = LOSSES[name]
    z_a, z_b = views(8, 16, torch.float32)
    assert torch.equal(MODULES[name](**kwargs)(z_a, z_b), ours(z_a, z_b, **kwargs))
    assert torch.equal(
        MODULES[name](**kwargs, gather_distributed=True)(z_a, z_b), ours(z_a, z_b, **kwargs)
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DebiasedContrastiveLoss(temperature=0), r"temperature=0 is invalid: must be > 0"),
        (lambda: DebiasedContrastiveLoss(tau_plus=1.0), r"tau_plus=1.0 is invalid: must be in "),
        (lambda: HardNegativeLoss(tau_plus=-0.1), r"tau_plus=-0.1 is invalid: must be in "),
        (lambda: HardNegativeLoss(beta=-1.0), r"beta=-1.0 is invalid: must be >= 0"),
        (lambda: HardNegativeLoss(beta=math.nan), r"beta=nan is invalid: must be >= 0"),
        (lambda: TripletSemiHardLoss(margin=0), r"margin=0 is invalid: must be > 0"),
        (lambda: MarginContrastiveLoss(margin=-1), r"margin=-1 is invalid: must be > 0"),
    ],
)
def test_invalid_arguments(make, message):
    with pytest.raises(ValueError, match="^" + message):
        make()


@pytest.mark.parametrize("name", list(LOSSES))
def test_one_image_is_rejected(name):
    ours, _, kwargs = LOSSES[name]
    z_a, z_b = views(1, 8)
    with pytest.raises(ValueError, match=r"^z_a has N=1 rows: .* needs N >= 2"):
        ours(z_a, z_b, **kwargs)

"""Tests of orbitcl.losses against the naive references, plus edge cases and memory."""

import math
import os
import subprocess
import sys

import pytest
import torch
from helpers.loss_cases import EXACT, assert_all_close, degenerate, value_and_grads, views
from helpers.paths import ROOT
from helpers.reference_losses import naive_ntxent, naive_orl, naive_tension

from orbitcl.losses import NTXentLoss, ORLLoss, functional

CASES = [(2, 3, 0.1), (5, 8, 0.5), (16, 32, 1.0)]  # (N, d, temperature)


@pytest.mark.parametrize("n, d, temperature", CASES)
def test_ntxent_matches_reference(n, d, temperature):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(functional.ntxent(z_a, z_b, temperature), z_a, z_b),
        value_and_grads(naive_ntxent(z_a, z_b, temperature), z_a, z_b),
    )


@pytest.mark.parametrize("detach_tension", [False, True])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_orl_matches_reference(n, d, temperature, detach_tension):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(functional.orl(z_a, z_b, temperature, 1e-6, detach_tension), z_a, z_b),
        value_and_grads(naive_orl(z_a, z_b, temperature, 1e-6, detach_tension), z_a, z_b),
    )


@pytest.mark.parametrize("t_min", [1e-6, 0.2])
@pytest.mark.parametrize("n, d", [(n, d) for n, d, _ in CASES])
def test_tension_matches_reference(n, d, t_min):
    z_a, z_b = views(n, d)
    ours, naive = functional.tension(z_a, z_b, t_min), naive_tension(z_a, z_b, t_min)
    torch.testing.assert_close(ours, naive, **EXACT)
    # Gradients of a generic scalar function of T.
    weights = torch.randn(
        2 * n, 2 * n, generator=torch.Generator().manual_seed(1), dtype=ours.dtype
    )
    assert_all_close(
        value_and_grads((ours * weights).sum(), z_a, z_b),
        value_and_grads((naive * weights).sum(), z_a, z_b),
    )


@pytest.mark.parametrize("t_min", [1e-6, 0.3])
def test_tension_structure(t_min):
    n = 64
    z_a, z_b = views(n, 16, torch.float32)
    t = functional.tension(z_a, z_b, t_min)
    positive = torch.arange(2 * n).roll(n)
    assert t.shape == (2 * n, 2 * n)
    assert (t[torch.arange(2 * n), positive] == 1).all()
    assert (t.diagonal() == 0).all()
    off_diagonal = t[~torch.eye(2 * n, dtype=torch.bool)]
    assert off_diagonal.min() >= t_min and off_diagonal.max() <= 1


def test_orl_with_t_min_one_is_ntxent():
    z_a, z_b = views(16, 32)
    assert_all_close(
        value_and_grads(functional.orl(z_a, z_b, 0.5, t_min=1.0), z_a, z_b),
        value_and_grads(functional.ntxent(z_a, z_b, 0.5), z_a, z_b),
    )


def test_modules_equal_functional():
    z_a, z_b = views(8, 16, torch.float32)
    assert torch.equal(NTXentLoss(0.2)(z_a, z_b), functional.ntxent(z_a, z_b, 0.2))
    assert torch.equal(
        ORLLoss(0.2, t_min=1e-3, detach_tension=True)(z_a, z_b),
        functional.orl(z_a, z_b, 0.2, t_min=1e-3, detach_tension=True),
    )


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda z_a, z_b: functional.ntxent(z_a, z_b, 0.1),
        lambda z_a, z_b: functional.orl(z_a, z_b, 0.1),
        lambda z_a, z_b: functional.orl(z_a, z_b, 0.1, detach_tension=True),
        lambda z_a, z_b: functional.tension(z_a, z_b).sum(),
    ],
    ids=["ntxent", "orl", "orl_detached", "tension"],
)
@pytest.mark.parametrize(
    "case", ["identical_views", "duplicate_rows", "collapse", "zero_difference_pair"]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_stay_finite(loss_fn, case, dtype):
    z_a, z_b = degenerate(case, dtype)
    for x in value_and_grads(loss_fn(z_a, z_b), z_a, z_b):
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_undefined_directions_fall_back_to_ntxent(dtype):
    eye = torch.eye(16, dtype=torch.bool)
    # Identical views: no anchor -> positive direction, for any negative.
    t = functional.tension(*degenerate("identical_views", dtype))
    assert (t[~eye] == 1).all()
    # Duplicate rows z_a[k] = z_a[k + 4]: no direction from one to the other.
    t = functional.tension(*degenerate("duplicate_rows", dtype))
    k = torch.arange(4)
    assert (t[k, k + 4] == 1).all() and (t[k + 4, k] == 1).all()
    assert (t[~eye] < 1).any()  # the other negatives keep their tension


@pytest.mark.parametrize("case", ["identical_views", "collapse"])
def test_orl_is_ntxent_where_tension_is_undefined(case):
    """Exact alignment or collapse is never rewarded by silencing the negatives."""
    z_a, z_b = degenerate(case, torch.float64)
    assert_all_close(
        value_and_grads(functional.orl(z_a, z_b, 0.2), z_a, z_b),
        value_and_grads(functional.ntxent(z_a, z_b, 0.2), z_a, z_b),
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_upcast(dtype):
    z_a, z_b = (z.detach().to(dtype) for z in views(16, 32, torch.float32))
    t = functional.tension(z_a, z_b)
    assert t.dtype == torch.float32
    assert torch.equal(t, functional.tension(z_a.float(), z_b.float()))
    for loss_fn in (functional.ntxent, functional.orl):
        loss = loss_fn(z_a, z_b, 0.5)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        assert torch.equal(loss, loss_fn(z_a.float(), z_b.float(), 0.5))


def test_autocast_does_not_lower_the_gram_precision():
    z_a, z_b = (z.detach() for z in views(16, 32, torch.float32))
    expected_t, expected_loss = functional.tension(z_a, z_b), functional.orl(z_a, z_b, 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(functional.tension(z_a, z_b), expected_t)
        assert torch.equal(functional.orl(z_a, z_b, 0.5), expected_loss)


@pytest.mark.parametrize("temperature", [0, -0.1, math.nan])
def test_invalid_temperature(temperature):
    z_a, z_b = views(4, 8)
    for call in (
        lambda: functional.ntxent(z_a, z_b, temperature),
        lambda: functional.orl(z_a, z_b, temperature),
        lambda: NTXentLoss(temperature),
        lambda: ORLLoss(temperature),
    ):
        with pytest.raises(
            ValueError, match=rf"^temperature={temperature} is invalid: must be > 0$"
        ):
            call()


@pytest.mark.parametrize("t_min", [0, -1e-6, 1.5])
def test_invalid_t_min(t_min):
    z_a, z_b = views(4, 8)
    for call in (
        lambda: functional.tension(z_a, z_b, t_min),
        lambda: functional.orl(z_a, z_b, 0.5, t_min),
        lambda: ORLLoss(t_min=t_min),
    ):
        with pytest.raises(ValueError, match=rf"^t_min={t_min} is invalid: must be in \(0, 1\]"):
            call()


def test_invalid_shapes():
    z_a, z_b = views(4, 8)
    with pytest.raises(ValueError, match=r"^z_a and z_b must both have shape \(N, d\)"):
        functional.orl(z_a, z_b[:, :5], 0.5)
    with pytest.raises(ValueError, match=r"^z_a and z_b must both have shape \(N, d\)"):
        functional.tension(z_a[0], z_b[0])
    for loss_fn in (functional.ntxent, functional.orl):
        with pytest.raises(ValueError, match=r"^z_a has N=1 rows: .* needs N >= 2"):
            loss_fn(z_a[:1], z_b[:1], 0.5)
    with pytest.raises(ValueError, match=r"^z_a has N=0 rows: tension needs N >= 1"):
        functional.tension(z_a[:0], z_b[:0])
    assert functional.tension(z_a[:1], z_b[:1]).shape == (2, 2)


LOSSES = {
    "ntxent": (functional.ntxent, naive_ntxent, {}),
    "orl": (functional.orl, naive_orl, {"t_min": 1e-6}),
    "orl_t_min": (functional.orl, naive_orl, {"t_min": 0.2}),
    "orl_detached": (functional.orl, naive_orl, {"detach_tension": True}),
}


@pytest.mark.parametrize("images", [slice(0, 3), slice(3, 7), slice(7, 8), slice(None)])
@pytest.mark.parametrize("name", list(LOSSES))
def test_row_subset_matches_reference(name, images):
    """The loss of the anchors of some images (both views) against all 2N columns: what one DDP
    rank computes, checked against the naive per-anchor loop."""
    ours, naive, kwargs = LOSSES[name]
    z_a, z_b = views(8, 16)
    assert_all_close(
        value_and_grads(ours(z_a, z_b, 0.5, images=images, **kwargs), z_a, z_b),
        value_and_grads(naive(z_a, z_b, 0.5, images=images, **kwargs), z_a, z_b),
    )


@pytest.mark.parametrize("name", list(LOSSES))
def test_row_subsets_average_to_the_full_loss(name):
    ours, _, kwargs = LOSSES[name]
    z_a, z_b = views(12, 16)
    parts = [ours(z_a, z_b, 0.5, images=slice(r, r + 4), **kwargs) for r in (0, 4, 8)]
    assert_all_close(
        value_and_grads(torch.stack(parts).mean(), z_a, z_b),
        value_and_grads(ours(z_a, z_b, 0.5, **kwargs), z_a, z_b),
    )


def test_tension_rows_are_rows_of_the_tension():
    z_a, z_b = views(8, 16)
    full = functional.tension(z_a, z_b)
    rows = torch.cat([torch.arange(2, 5), torch.arange(10, 13)])  # images 2..4, both views
    torch.testing.assert_close(
        functional.tension(z_a, z_b, images=slice(2, 5)), full[rows], **EXACT
    )


@pytest.mark.parametrize("case", ["identical_views", "duplicate_rows", "collapse"])
def test_row_subsets_of_degenerate_inputs_stay_finite(case):
    z_a, z_b = degenerate(case, torch.float32)
    for x in value_and_grads(functional.orl(z_a, z_b, 0.1, images=slice(4, 8)), z_a, z_b):
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("images", [slice(0, 0), slice(0, 8, 2), slice(9, 12)])
def test_invalid_images(images):
    z_a, z_b = views(8, 16)
    with pytest.raises(ValueError, match=r"^images=.* is invalid: must be a non-empty slice"):
        functional.ntxent(z_a, z_b, 0.5, images=images)


@pytest.mark.parametrize("loss_cls", [NTXentLoss, ORLLoss])
def test_gather_distributed_without_process_group_is_the_local_loss(loss_cls):
    z_a, z_b = views(8, 16, torch.float32)
    assert torch.equal(loss_cls(gather_distributed=True)(z_a, z_b), loss_cls()(z_a, z_b))


# The peak RSS of /proc (VmHWM, KiB on Linux), not getrusage's ru_maxrss: that one survives
# fork + exec, so the child of a large pytest process would start at the parent's peak and show
# no growth at all.
PEAK_MEMORY_SCRIPT = """
import sys, torch
from orbitcl.losses import functional
def peak_rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if "VmHWM" in line)
loss_fn = getattr(functional, sys.argv[1])
g = torch.Generator().manual_seed(0)
z_a, z_b = (torch.randn(4096, 128, generator=g, requires_grad=True) for _ in range(2))
loss_fn(z_a[:4], z_b[:4], 0.5).backward()  # warm-up: lazy initialisation, grad buffers
before = peak_rss()
loss_fn(z_a, z_b, 0.5).backward()
print(peak_rss() - before)
"""


def peak_memory_growth_gib(loss_name):
    """Peak RSS growth of one forward + backward at 2N = 8192, d = 128, in a fresh process."""
    src = str(ROOT / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_SCRIPT, loss_name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout) / 2**20


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_orl_peak_memory_at_2n_8192():
    ntxent, orl = peak_memory_growth_gib("ntxent"), peak_memory_growth_gib("orl")
    print(f"\npeak memory growth, 2N = 8192, d = 128: NT-Xent {ntxent:.2f} GiB, ORL {orl:.2f} GiB")
    assert orl < 4, f"ORL grew the peak memory by {orl:.2f} GiB (NT-Xent: {ntxent:.2f} GiB)"

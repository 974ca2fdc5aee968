"""The blocked NT-Xent/ORL kernels (orbitcl.losses.kernels.blocked): several blocks of rows, the
eager and compiled kernels, their fallback, the backend argument, and the scratch buffers."""

import pytest
import torch
from helpers.reference_losses import naive_ntxent, naive_orl

from orbitcl.losses import functional
from orbitcl.losses.kernels import Hyper, blocked, workspace
from orbitcl.losses.kernels import compiled as block_compiled
from orbitcl.losses.kernels import eager as block_eager

EXACT = {"rtol": 1e-10, "atol": 1e-10}
LOSSES = {
    "ntxent": (functional.ntxent, naive_ntxent, {}),
    "orl": (functional.orl, naive_orl, {"t_min": 1e-6}),
    "orl_t_min": (functional.orl, naive_orl, {"t_min": 0.2}),
    "orl_detached": (functional.orl, naive_orl, {"detach_tension": True}),
}
N, D = 11, 8


@pytest.fixture
def blocks_of_three(monkeypatch):
    """Blocks of 3 images (6 rows) at N = 11 in float64: 3, 3, 3 and a last one of 2."""
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 6 * 2 * N * 8)
    assert blocked._blocks(N, 2 * N, 8) == [(0, 3), (3, 6), (6, 9), (9, 11)]


def views(n=N, d=D, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g, dtype=dtype).requires_grad_() for _ in range(2))


def value_and_grads(loss, z_a, z_b):
    return (loss.detach(), *torch.autograd.grad(loss, (z_a, z_b)))


@pytest.mark.parametrize("images", [None, slice(2, 9)])
@pytest.mark.parametrize("name", list(LOSSES))
def test_several_blocks_match_reference(blocks_of_three, monkeypatch, name, images):
    monkeypatch.setenv("ORBITCL_LOSS_KERNELS", "eager")
    ours, naive, kwargs = LOSSES[name]
    z_a, z_b = views()
    for actual, expected in zip(
        value_and_grads(ours(z_a, z_b, 0.3, images=images, **kwargs), z_a, z_b),
        value_and_grads(naive(z_a, z_b, 0.3, images=images, **kwargs), z_a, z_b),
        strict=True,
    ):
        torch.testing.assert_close(actual, expected, **EXACT)


def test_unblock_inverts_block():
    x = torch.arange(2 * N)
    blocks = [(0, 3), (3, 6), (6, 9), (9, 11)]
    parts = [blocked._block(x, N, lo, hi) for lo, hi in blocks]
    assert torch.equal(parts[1], torch.tensor([3, 4, 5, 14, 15, 16]))  # both views of 3..5
    assert torch.equal(blocked._unblock(parts, blocks), x)


def test_backward_twice_with_retain_graph(blocks_of_three):
    z_a, z_b = views()
    loss = functional.orl(z_a, z_b, 0.3)
    first = torch.autograd.grad(loss, (z_a, z_b), retain_graph=True)
    second = torch.autograd.grad(loss, (z_a, z_b))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_interleaved_losses_share_the_scratch_buffers_safely():
    """Scratch buffers only live within one forward or backward: two losses of different sizes
    whose forwards and backwards interleave give their separate gradients."""
    z_a, z_b = views()
    small_a, small_b = views(5, D, seed=1)
    separate = [
        torch.autograd.grad(functional.orl(z_a, z_b, 0.3), (z_a, z_b)),
        torch.autograd.grad(functional.ntxent(small_a, small_b, 0.3), (small_a, small_b)),
    ]
    total = functional.orl(z_a, z_b, 0.3) + functional.ntxent(small_a, small_b, 0.3)
    together = torch.autograd.grad(total, (z_a, z_b, small_a, small_b))
    for a, b in zip(together, separate[0] + separate[1], strict=True):
        torch.testing.assert_close(a, b, **EXACT)


def test_kernel_choice():
    orl, ntxent = Hyper(0.5, 1e-6, 1e-6, True, True), Hyper(0.5, 1.0, 0.0, False, False)
    big = blocked.AUTO_COMPILE_ENTRIES
    assert orl.backend == "auto"
    assert blocked.kernels_for(orl, 64, 64) is block_eager  # a small batch: not worth compiling
    assert blocked.kernels_for(orl, big // 8192, 8192) is block_compiled
    assert blocked.kernels_for(ntxent, big // 8192, 8192) is block_eager  # NT-Xent: few ops
    eager, compile = orl._replace(backend="eager"), orl._replace(backend="compile")
    assert blocked.kernels_for(eager, big // 8192, 8192) is block_eager
    assert blocked.kernels_for(compile, 64, 64) is block_compiled
    with pytest.raises(ValueError, match="^backend='fast' is invalid: must be one of auto, eager"):
        blocked.kernels_for(orl._replace(backend="fast"), 64, 64)


def test_backend_is_an_argument_with_the_environment_as_default(monkeypatch):
    """``ORLLoss(backend=...)`` wins; without one, ``$ORBITCL_LOSS_KERNELS``, read at the call."""
    chosen = []
    real = blocked.kernels_for
    monkeypatch.setattr(
        blocked, "kernels_for", lambda h, r, c: chosen.append(h.backend) or real(h, r, c)
    )
    z_a, z_b = views()
    monkeypatch.setenv("ORBITCL_LOSS_KERNELS", "eager")
    functional.orl(z_a, z_b, 0.3)
    functional.orl(z_a, z_b, 0.3, backend="auto")
    monkeypatch.delenv("ORBITCL_LOSS_KERNELS")
    functional.orl(z_a, z_b, 0.3)
    assert chosen == ["eager", "auto", "auto"]
    with pytest.raises(ValueError, match="^backend='fast' is invalid"):
        functional.orl(z_a, z_b, 0.3, backend="fast")


def test_compile_failure_falls_back_to_eager(monkeypatch):
    """Without a working compiler ORL warns once and runs its exact eager kernels."""

    def no_compiler(fn):
        def fail(*args):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(block_compiled.torch, "compile", no_compiler)
    monkeypatch.setattr(block_compiled, "_compiled", {})
    monkeypatch.setattr(block_compiled, "broken", None)
    z_a, z_b = views()
    monkeypatch.setenv("ORBITCL_LOSS_KERNELS", "eager")
    expected = value_and_grads(functional.orl(z_a, z_b, 0.3), z_a, z_b)
    monkeypatch.setenv("ORBITCL_LOSS_KERNELS", "compile")
    with pytest.warns(UserWarning, match="torch.compile of ORL's kernels failed.*no C\\+\\+"):
        actual = value_and_grads(functional.orl(z_a, z_b, 0.3), z_a, z_b)
    assert block_compiled.broken == "RuntimeError: no C++ compiler"
    assert all(torch.equal(a, e) for a, e in zip(actual, expected, strict=True))


def test_scratch_buffers_are_reused_and_grow():
    like = torch.zeros(1)
    workspace.release()
    first = workspace.scratch("test", (4, 8), like)
    assert workspace.scratch("test", (2, 8), like).data_ptr() == first.data_ptr()
    assert workspace.scratch("other", (2, 8), like).data_ptr() != first.data_ptr()
    grown = workspace.scratch("test", (8, 8), like)
    assert grown.shape == (8, 8) and grown.is_contiguous()
    assert workspace.scratch("test", (4, 8), like).data_ptr() == grown.data_ptr()
    assert workspace.scratch("test", (4, 8), like.double()).dtype == torch.float64
    workspace.release()


def degenerate_views():
    """Identical views for images 0..2, a duplicate image (3 = 4) and a zero-difference pair."""
    z_a, z_b = (z.detach().clone() for z in views())
    z_b[:3] = z_a[:3]
    z_a[4], z_b[4] = z_a[3], z_b[3]
    return z_a.requires_grad_(), z_b.requires_grad_()


@pytest.mark.slow  # compiles ORL's kernels: about a minute, less with Inductor's disk cache
@pytest.mark.parametrize("detach_tension", [False, True])
def test_compiled_kernels_equal_eager(blocks_of_three, monkeypatch, detach_tension):
    cases = [
        (views(), None),
        (views(), slice(2, 9)),
        (degenerate_views(), None),
        (views(16, 32, seed=1), None),  # one block
        (views(96, 32, torch.float32, seed=2), None),
    ]
    for (z_a, z_b), images in cases:
        results = {}
        for kernels in ("eager", "compile"):
            monkeypatch.setenv("ORBITCL_LOSS_KERNELS", kernels)
            loss = functional.orl(z_a, z_b, 0.3, 1e-6, detach_tension, images=images)
            results[kernels] = value_and_grads(loss, z_a, z_b)
        tolerance = EXACT if z_a.dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
        for actual, expected in zip(results["compile"], results["eager"], strict=True):
            assert torch.isfinite(actual).all()
            torch.testing.assert_close(actual, expected, **tolerance)
    assert block_compiled.broken is None

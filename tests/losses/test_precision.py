"""Mixed precision: under bf16/fp16 autocast on the CPU the losses stay finite and float32, and
ORL's tension is computed in float32 (docs/orl.md, "Cost": in half precision T near aligned
pairs is meaningless)."""

import pytest
import torch

from orbitcl.losses import functional

HALF = [torch.bfloat16, torch.float16]
LOSSES = {
    "ntxent": lambda z_a, z_b: functional.ntxent(z_a, z_b, 0.2),
    "orl": lambda z_a, z_b: functional.orl(z_a, z_b, 0.2),
    "orl_detached": lambda z_a, z_b: functional.orl(z_a, z_b, 0.2, detach_tension=True),
}


def projector_and_inputs(seed=0):
    """A float32 linear projector and two views' inputs: under autocast its outputs are half."""
    g = torch.Generator().manual_seed(seed)
    projector = torch.nn.Linear(32, 16)
    with torch.no_grad():
        projector.weight.copy_(torch.randn(16, 32, generator=g) / 32**0.5)
    return projector, torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)


def near_aligned_views(seed=0):
    """Views 1% apart: ||z_p(i) - z_i|| ~ 1e-2 on the unit sphere, resolved by float32 but not by
    bfloat16 (eps 8e-3), which would leave T near aligned pairs to rounding."""
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(32, 16, generator=g)
    return z_a, z_a + 1e-2 * torch.randn(32, 16, generator=g)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_autocast_loss_and_gradients_are_finite_and_close_to_float32(name, dtype):
    projector, x_a, x_b = projector_and_inputs()
    loss_fn = LOSSES[name]
    reference = loss_fn(projector(x_a), projector(x_b))  # float32 throughout
    (reference_grad,) = torch.autograd.grad(reference, projector.weight)
    with torch.autocast("cpu", dtype=dtype):
        z_a, z_b = projector(x_a), projector(x_b)
        loss = loss_fn(z_a, z_b)
    assert z_a.dtype == dtype  # the projector did run in half precision
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, projector.weight)
    assert torch.isfinite(grad).all()
    # Only the half-precision embeddings differ from the float32 run (relative error ~eps / 2).
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(loss, reference, rtol=eps / 8, atol=0)
    assert (grad - reference_grad).norm() <= 2 * eps * reference_grad.norm()


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_autocast_tension_is_float32_tension(dtype):
    """Float32 embeddings under autocast: T, the loss and its gradients are exactly float32's."""
    z_a, z_b = (z.requires_grad_() for z in near_aligned_views())
    expected_t = functional.tension(z_a, z_b)
    expected = functional.orl(z_a, z_b, 0.2)
    expected_grads = torch.autograd.grad(expected, (z_a, z_b))
    with torch.autocast("cpu", dtype=dtype):
        t = functional.tension(z_a, z_b)
        loss = functional.orl(z_a, z_b, 0.2)
        grads = torch.autograd.grad(loss, (z_a, z_b))  # a backward under autocast, too
    assert t.dtype == torch.float32 and torch.equal(t, expected_t)
    assert torch.equal(loss, expected)
    assert all(torch.equal(g, e) for g, e in zip(grads, expected_grads, strict=True))


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_tension_of_half_embeddings_is_computed_in_float32(dtype):
    """Half-precision embeddings (a projector under autocast) are upcast before anything else:
    T is the float32 tension of those embeddings, within float32 rounding of float64's."""
    z_a, z_b = (z.to(dtype) for z in near_aligned_views())
    with torch.autocast("cpu", dtype=dtype):
        t = functional.tension(z_a, z_b)
    assert t.dtype == torch.float32
    assert torch.equal(t, functional.tension(z_a.float(), z_b.float()))
    exact = functional.tension(z_a.double(), z_b.double())
    assert (t.double() - exact).abs().max() < 1e-4  # T in [0, 1]; half precision: errors ~1
    off = ~torch.eye(len(t), dtype=torch.bool)
    assert (exact[off] < 1).float().mean() > 0.9  # T is not just its fallback here


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_gradients_of_half_embeddings_are_the_float32_gradients(name, dtype):
    """The loss of half embeddings is the float32 loss of their upcast; the gradient comes back
    in the embeddings' dtype, rounded once."""
    z_a, z_b = (z.to(dtype).requires_grad_() for z in near_aligned_views())
    up_a, up_b = (z.detach().float().requires_grad_() for z in (z_a, z_b))
    with torch.autocast("cpu", dtype=dtype):
        loss = LOSSES[name](z_a, z_b)
    expected = LOSSES[name](up_a, up_b)
    assert torch.equal(loss, expected)
    grads = torch.autograd.grad(loss, (z_a, z_b))
    for grad, expected_grad in zip(grads, torch.autograd.grad(expected, (up_a, up_b)), strict=True):
        assert grad.dtype == dtype and torch.isfinite(grad).all()
        assert torch.equal(grad, expected_grad.to(dtype))

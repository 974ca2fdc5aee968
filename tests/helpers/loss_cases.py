"""Inputs and checks shared by the loss tests: random views, degenerate views, float64 closeness."""

import torch

EXACT = {"rtol": 1e-10, "atol": 1e-10}  # float64 against the naive references


def views(n, d, dtype=torch.float64, seed=0):
    """Two (N, d) leaf tensors of un-normalised projector outputs."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g, dtype=dtype).requires_grad_() for _ in range(2))


def value_and_grads(output, z_a, z_b):
    return (output.detach(), *torch.autograd.grad(output, (z_a, z_b)))


def assert_all_close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, **EXACT)


def degenerate(case, dtype):
    """Views with an undefined tension direction somewhere, N = 8, d = 16."""
    z_a, z_b = (z.detach() for z in views(8, 16, dtype))
    if case == "identical_views":
        z_b = z_a.clone()
    elif case == "duplicate_rows":
        z_a = torch.cat([z_a[:4], z_a[:4]])
    elif case == "collapse":
        z_a = z_b = z_a[:1].expand(8, -1)
    elif case == "zero_difference_pair":
        z_b = torch.cat([z_a[:1], z_b[1:]])
    return z_a.clone().requires_grad_(), z_b.clone().requires_grad_()

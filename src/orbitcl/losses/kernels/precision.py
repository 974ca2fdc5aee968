"""IEEE fp32 for the products that a formula subtracts from each other, whatever the global
TF32 or matmul-precision setting.

ORL's tension subtracts Gram entries (``G[p(i), k] - G[i, k] - a_i``, ``kernels.tension``), so
for the pairs ORL is about (tight orbits, near negatives) it is a difference of nearly equal
numbers. TF32 (``torch.backends.cuda.matmul.allow_tf32``, or
``torch.set_float32_matmul_precision("high"/"medium")``, which Lightning's start-up hint
recommends) rounds each product's inputs to 10 mantissa bits: ~1e-4 of error in every Gram
entry, larger than the differences, and T becomes noise. The same holds for the similarity
statistics, which resolve cosines near 1. ``ieee_fp32`` pins IEEE fp32 around those products
only, so the encoder keeps TF32 (``docs/gpu.md``).

It sets and restores process-global flags: cheap (a few C calls, nothing when the setting is
already IEEE), and outside any compiled region (orbitcl compiles only elementwise kernels).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

IEEE = "highest"


@contextmanager
def ieee_fp32() -> Iterator[None]:
    """Float32 matmuls inside run in IEEE fp32 (no TF32 on CUDA, no bf16 passes in oneDNN)."""
    try:
        saved = torch.get_float32_matmul_precision()
    except RuntimeError:  # the caller set precisions through torch's newer per-backend API
        with _per_backend_ieee():
            yield
        return
    if saved == IEEE:
        yield
        return
    torch.set_float32_matmul_precision(IEEE)  # also clears allow_tf32, its legacy alias
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


@contextmanager
def _per_backend_ieee() -> Iterator[None]:
    """As ``ieee_fp32``, through ``torch.backends.*.matmul.fp32_precision`` (torch >= 2.9),
    for a process that uses that API: mixing it with the legacy one makes torch raise."""
    backends = [torch.backends.cuda.matmul, torch.backends.mkldnn.matmul]
    saved = [backend.fp32_precision for backend in backends]
    for backend in backends:
        backend.fp32_precision = "ieee"
    try:
        yield
    finally:
        for backend, value in zip(backends, saved, strict=True):
            backend.fp32_precision = value


class _GramIEEE(torch.autograd.Function):
    """``a b^T`` with its forward and backward products in IEEE fp32: autograd runs a backward
    after the forward's context has closed, so the pinning has to travel with the function."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        with ieee_fp32():
            return a @ b.T

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        with ieee_fp32():
            grad_a = grad @ b if ctx.needs_input_grad[0] else None
            grad_b = grad.T @ a if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def gram_ieee(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a b^T`` (r, c) of a (r, d) and b (c, d), forward and backward in IEEE fp32."""
    return _GramIEEE.apply(a, b)

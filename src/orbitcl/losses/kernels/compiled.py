"""The elementwise work of one block of ORL's Gram rows as pure functions, for torch.compile.

Same results as ``eager`` (to rounding), written for Inductor: masks inline, no in-place
ops, no data-dependent branches, so that the forward compiles to one fused loop nest over the
block and the backward to two (the gradient and its column sums). On the CPU Inductor emits
vectorised C++ with OpenMP; that needs a C++ compiler, and the first call of each kind compiles
(tens of seconds; cached on disk for later processes). Any failure to compile is reported once
and falls back to ``eager`` for the rest of the process.
"""

import warnings

import torch
from torch import Tensor

from orbitcl.losses.kernels import eager
from orbitcl.losses.kernels.negatives import left_out
from orbitcl.losses.kernels.rows import BlockRows, Hyper
from orbitcl.losses.kernels.tension import clamped, raw_tension

_compiled: dict = {}  # pure function -> its compiled version
broken: str | None = None  # why compiling failed, once it has


def _swap(x: Tensor, b: int) -> Tensor:
    """The rows of the positives: the block's other half (``BlockRows``)."""
    return x.roll(b, 0)


def _masks(gram: Tensor, rows: BlockRows, negatives: str) -> tuple[Tensor, Tensor, Tensor]:
    """Where each of the block's rows (2b, 2N) has its own column, its positive's, and the
    columns its softmax leaves out (``negatives.left_out``); inlined by the compiler."""
    k = torch.arange(gram.shape[1], device=gram.device)
    is_self, is_pos = k == rows.self_cols[:, None], k == rows.pos_cols[:, None]
    return is_self, is_pos, left_out(rows.self_cols, rows.pos_cols, gram.shape[1], negatives)


def _tension(gram, gram_pos, rows: BlockRows, s, is_self, is_pos, t_min: float, tol: float):
    """T (2b, 2N), ``inv = ||z_k - z_i||^-1`` and where T is the raw tension (bool)."""
    x, inv, noise = raw_tension(gram, gram_pos, rows.a, rows.pos_dist, rows.s_rows, s, tol)
    fixed = noise | is_self | is_pos | rows.views_coincide[:, None]  # T falls back to 1
    return clamped(x, fixed, t_min), inv, ~fixed & (x >= t_min) & (x <= 1.0)


def _forward(
    gram: Tensor,
    rows: BlockRows,
    s: Tensor,
    temperature: float,
    t_min: float,
    tol: float,
    negatives: str,
):
    is_self, is_pos, out = _masks(gram, rows, negatives)
    t, _, _ = _tension(gram, _swap(gram, len(gram) // 2), rows, s, is_self, is_pos, t_min, tol)
    logits = gram * t / temperature
    # exp of the logits left out, then 0: exp(-inf) is a slow path of the vectorised exp.
    top = torch.where(out, float("-inf"), logits).amax(1, keepdim=True)
    return top.squeeze(1) + torch.where(out, 0.0, (logits - top).exp()).sum(1).log()


def _terms(
    gram,
    gram_pos,
    rows: BlockRows,
    s,
    lse,
    temperature: float,
    t_min: float,
    tol: float,
    negatives: str,
):
    is_self, is_pos, out = _masks(gram, rows, negatives)
    t, inv, raw = _tension(gram, gram_pos, rows, s, is_self, is_pos, t_min, tol)
    p = torch.where(out, 0.0, (gram * t / temperature - lse[:, None]).exp())  # softmax
    v = torch.where(raw, p * gram, 0.0)  # V
    vi = v * inv  # A = V inv / pos_dist
    return p * t - is_pos.to(p.dtype), t, v, vi, vi * inv * t  # (P - Y) T, T, V, V inv, C


def _backward(
    gram,
    rows: BlockRows,
    s,
    lse,
    temperature: float,
    t_min: float,
    tol: float,
    through_t: bool,
    negatives: str,
):
    b = len(gram) // 2
    hyper = (temperature, t_min, tol, negatives)
    direct, t, v, vi, c = _terms(gram, _swap(gram, b), rows, s, lse, *hyper)
    if not through_t:
        return direct, None, None, None, None
    # A[p(i), k], recomputed from the positives' rows: cheaper than storing A and reading it back.
    swapped = BlockRows(*(_swap(x, b) for x in rows))
    _, _, _, vi_pos, _ = _terms(_swap(gram, b), gram, swapped, s, _swap(lse, b), *hyper)
    d_gram = direct + c - vi / rows.pos_dist[:, None] + vi_pos / swapped.pos_dist[:, None]
    d_a = -vi.sum(1) / rows.pos_dist
    d_pos_dist = -(v * t).sum(1) / rows.pos_dist
    return d_gram, d_a, d_pos_dist, -0.5 * c.sum(1), -0.5 * c.sum(0)


def _call(pure, args: tuple, fallback):
    """``pure(*args)``, compiled; ``fallback()`` once compiling has failed in this process."""
    global broken
    if broken is None:
        try:
            compiled = _compiled.get(pure)
            if compiled is None:
                compiled = _compiled[pure] = torch.compile(pure)
            return compiled(*args)
        except Exception as error:  # no compiler, an Inductor bug: the eager kernels are exact
            broken = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"torch.compile of ORL's kernels failed, using the eager ones: {broken[:500]}",
                stacklevel=3,
            )
    return fallback()


def forward_block(gram: Tensor, rows: BlockRows, s: Tensor, hyper: Hyper) -> Tensor:
    """As ``eager.forward_block``, with tension."""
    args = (gram, rows, s, hyper.temperature, hyper.t_min, hyper.tol, hyper.negatives)
    return _call(_forward, args, lambda: eager.forward_block(gram, rows, s, hyper))


def backward_block(
    gram: Tensor, rows: BlockRows, s: Tensor, lse: Tensor, hyper: Hyper
) -> tuple[Tensor, ...]:
    """As ``eager.backward_block``, with tension."""
    args = (
        gram,
        rows,
        s,
        lse,
        hyper.temperature,
        hyper.t_min,
        hyper.tol,
        hyper.through_t,
        hyper.negatives,
    )
    return _call(_backward, args, lambda: eager.backward_block(gram, rows, s, lse, hyper))

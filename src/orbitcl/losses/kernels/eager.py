"""The elementwise work of one block of Gram rows, in eager PyTorch (see ``blocked``).

Each function takes the block's Gram rows ``gram`` (2b, 2N), a scratch buffer it may overwrite.
Ops are few, in place or into scratch buffers (``workspace``): on a CPU shared by several
processes every op over a (2b, 2N) matrix waits at a barrier for all of torch's threads, so the
op count matters as much as the passes over memory, and a fresh matrix costs page faults.
Boolean matrices are avoided where a scatter will do (the kernels that read them are not
vectorised); the duplicate negatives are one mask, which spares a host sync. Where T falls back
to 1 the raw tension is set to 2, which clamps to 1 and lies outside the range ``[t_min, 1]``
through which the clamp passes gradients.
"""

import torch
from torch import Tensor

from orbitcl.losses.kernels.negatives import leave_out_, quadrants
from orbitcl.losses.kernels.rows import BlockRows, Hyper
from orbitcl.losses.kernels.tension import raw_tension as raw_tension_of_rows
from orbitcl.losses.kernels.workspace import scratch


def raw_tension(gram: Tensor, rows: BlockRows, s: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """The raw tension x (2b, 2N) (``tension.raw_tension``), 2 where T falls back to 1, and
    ``inv = ||z_k - z_i||^-1``, finite everywhere; both in scratch buffers.

    The fallbacks (``tension``): the self entry, the positive, every entry of a row whose views
    coincide, and a negative that coincides with its anchor.
    """
    b = len(gram) // 2
    i = torch.arange(2 * b, device=gram.device)
    x, inv = scratch("x", gram.shape, gram), scratch("inv", gram.shape, gram)
    # By halves: G[p(i), k] of the first half's rows is the second half (and the other way).
    for own, pos in ((slice(0, b), slice(b, 2 * b)), (slice(b, 2 * b), slice(0, b))):
        raw_tension_of_rows(
            gram[own],
            gram[pos],
            rows.a[own],
            rows.pos_dist[own],
            rows.s_rows[own],
            s,
            tol,
            out=(x[own], inv[own]),
        )
    inv[i, rows.self_cols] = 0.0  # noise, but a fallback anyway: not a duplicate
    # Duplicate negatives, whose squared distance was clamped to tol (the largest inv). Marked
    # by a mask over the whole block, not by finding the rows (nonzero, a host sync on CUDA);
    # the bound is filled on the device (no host-to-device copy), in inv's dtype.
    largest = inv.new_full((), tol).rsqrt_()
    x.masked_fill_(inv >= largest, 2.0)
    x[i, rows.self_cols] = 2.0  # whatever its rounding
    x[i, rows.pos_cols] = 2.0
    x.masked_fill_(rows.views_coincide[:, None], 2.0)  # (2b, 1): whole rows
    return x, inv


def logsumexp_(x: Tensor, temperature: float) -> Tensor:
    """``logsumexp(x / tau)`` of each row of x (r, c), a view it overwrites."""
    top = x.amax(1, keepdim=True)  # the largest logit
    # exp((x - top) / tau), in one op, then its sum.
    total = torch.add(top / -temperature, x, alpha=1 / temperature, out=x)
    return (top.squeeze(1) / temperature).add_(total.exp_().sum(1).log_())


def forward_block(gram: Tensor, rows: BlockRows, s: Tensor | None, hyper: Hyper) -> Tensor:
    """``logsumexp_k G[i, k] T[i, k] / tau`` of each row (2b,), k over the positive and the
    negatives (``hyper.negatives``)."""
    if hyper.tension:
        x, _ = raw_tension(gram, rows, s, hyper.tol)
        gram = x.clamp_(hyper.t_min, 1.0).mul_(gram)  # G T
    i = torch.arange(len(gram), device=gram.device)
    within = hyper.negatives == "within_view"
    positive = gram[i, rows.pos_cols] if within else None  # (2b,), outside the quadrants
    gram[i, rows.self_cols] = float("-inf")
    lse = torch.cat(
        [
            logsumexp_(gram[r, c], hyper.temperature)
            for r, c in quadrants(len(gram), gram.shape[1], hyper.negatives)
        ]
    )
    return torch.logaddexp(lse, positive / hyper.temperature) if within else lse


def softmax_(gram: Tensor, rows: BlockRows, lse: Tensor, temperature: float) -> Tensor:
    """P, the softmax of ``G / tau`` over every other anchor (0 at k = i), in place of ``gram``
    (2b, 2N), from the rows' logsumexp ``lse`` (2b,)."""
    p = torch.add(-lse[:, None], gram, alpha=1 / temperature, out=gram).exp_()
    p[torch.arange(len(p), device=p.device), rows.self_cols] = 0.0
    return p


def backward_block(
    gram: Tensor,
    rows: BlockRows,
    s: Tensor | None,
    lse: Tensor,
    hyper: Hyper,
    targets: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """``dL/dG`` of the block (2b, 2N) and, through T, ``dL/da``, ``dL/dpos_dist``, ``dL/ds`` of
    the rows (2b,) and ``dL/ds`` of the columns (2N,), all divided by ``dL / (2n tau)``.
    ``targets`` (2b, 2N): weights W in place of the one-hot positive (no tension)."""
    b = len(gram) // 2
    i = torch.arange(2 * b, device=gram.device)
    if not hyper.tension:
        tau, negatives = hyper.temperature, hyper.negatives
        if targets is not None:  # weighted InfoNCE: every other anchor, W in place of Y
            return softmax_(gram, rows, lse, tau).sub_(targets), None, None, None, None  # - W
        p_pos = gram[i, rows.pos_cols].div_(tau).sub_(lse).exp_()  # (2b,) P at the positive
        for r, c in quadrants(len(gram), gram.shape[1], negatives):  # P, the softmax ...
            torch.add(-lse[r, None], gram[r, c], alpha=1 / tau, out=gram[r, c]).exp_()
        for r, c in quadrants(len(gram), gram.shape[1], negatives, inside=False):
            gram[r, c] = 0.0  # ... 0 outside it
        gram[i, rows.self_cols] = 0.0
        gram[i, rows.pos_cols] = p_pos - 1.0  # - Y
        return gram, None, None, None, None

    x, inv = raw_tension(gram, rows, s, hyper.tol)
    t = torch.clamp(x, hyper.t_min, 1.0, out=scratch("t", gram.shape, gram))
    if hyper.through_t:
        x = torch.eq(x, t, out=x).mul_(gram)  # G where T is the raw tension, else 0
    # P, the softmax, into the Gram rows' buffer.
    p = torch.addcmul(-lse[:, None], gram, t, value=1 / hyper.temperature, out=gram).exp_()
    # 0 outside the softmax: V, A and C vanish there too, so T there has no gradient.
    leave_out_(p, rows.self_cols, rows.pos_cols, hyper.negatives, 0.0)
    if not hyper.through_t:
        d_gram = p.mul_(t)
        d_gram[i, rows.pos_cols] -= 1.0  # - Y
        return d_gram, None, None, None, None

    v = x.mul_(p)  # V = P G where T is the raw tension
    d_pos_dist = torch.einsum("ik,ik->i", v, t).div_(rows.pos_dist).neg_()
    vi = v.mul_(inv)  # V inv: A = V inv / pos_dist
    d_a = vi.sum(1).div_(rows.pos_dist).neg_()
    c = inv.mul_(vi).mul_(t)  # C = V T inv^2
    d_s_rows, d_s = c.sum(1).mul_(-0.5), c.sum(0).mul_(-0.5)
    d_gram = c.addcmul_(p, t)  # P T + C
    d_gram.addcdiv_(vi, rows.pos_dist[:, None], value=-1.0)  # - A
    d_gram[:b].addcdiv_(vi[b:], rows.pos_dist[b:, None])  # + A[p(i), k]
    d_gram[b:].addcdiv_(vi[:b], rows.pos_dist[:b, None])
    d_gram[i, rows.pos_cols] -= 1.0  # - Y
    return d_gram, d_a, d_pos_dist, d_s_rows, d_s

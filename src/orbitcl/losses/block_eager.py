"""The elementwise work of one block of Gram rows, in eager PyTorch (see ``blocked``).

Each function takes the block's Gram rows ``gram`` (2b, 2N), a scratch buffer it may overwrite.
Ops are few, in place or into scratch buffers (``workspace``): on a CPU shared by several
processes every op over a (2b, 2N) matrix waits at a barrier for all of torch's threads, so the
op count matters as much as the passes over memory, and a fresh matrix costs page faults.
Boolean matrices are avoided (the kernels that read them are not vectorised): where T falls back
to 1 the raw tension is set to 2 by scatter, which clamps to 1 and lies outside the range
``[t_min, 1]`` through which the clamp passes gradients.
"""

import torch
from torch import Tensor

from orbitcl.losses.block_rows import BlockRows, Hyper
from orbitcl.losses.workspace import scratch


def raw_tension(gram: Tensor, rows: BlockRows, s: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """The raw tension x (2b, 2N), 2 where T falls back to 1, and ``inv = ||z_k - z_i||^-1``.

    The fallbacks (``functional._tension``): the self entry, the positive, every entry of a row
    whose views coincide, and a negative that coincides with its anchor. inv is finite
    everywhere (0 on the self entry).
    """
    b = len(gram) // 2
    i = torch.arange(2 * b, device=gram.device)
    sq = torch.add(s, gram, alpha=-2, out=scratch("sq", gram.shape, gram))
    sq.add_(rows.s_rows[:, None])  # ||z_k - z_i||^2
    sq[i, rows.self_cols] = float("inf")
    # Duplicate negatives, where ||z_k - z_i||^2 < tol is rounding noise: rare, so found by row
    # first, then by entry in those rows only.
    dup_rows = (sq.amin(1) < tol).nonzero().squeeze(1)
    if len(dup_rows):
        r, k = (sq[dup_rows] < tol).nonzero(as_tuple=True)
        dup = (dup_rows[r], k)
    inv = sq.clamp_(min=tol).rsqrt_()

    x = scratch("x", gram.shape, gram)
    # num = G[p(i), k] - G[i, k] - a_i; the rows p(i) are the other half of the block.
    torch.sub(gram[b:], gram[:b], out=x[:b])
    torch.neg(x[:b], out=x[b:])
    x.sub_(rows.a[:, None]).mul_(inv).div_(rows.pos_dist[:, None])
    x[i, rows.self_cols] = 2.0
    x[i, rows.pos_cols] = 2.0
    if rows.views_coincide.any():
        x[rows.views_coincide] = 2.0
    if len(dup_rows):
        x[dup] = 2.0
    return x, inv


def forward_block(gram: Tensor, rows: BlockRows, s: Tensor | None, hyper: Hyper) -> Tensor:
    """``logsumexp_{k != i} G[i, k] T[i, k] / tau`` of each row (2b,)."""
    if hyper.tension:
        x, _ = raw_tension(gram, rows, s, hyper.tol)
        gram = x.clamp_(hyper.t_min, 1.0).mul_(gram)  # G T
    gram[torch.arange(len(gram), device=gram.device), rows.self_cols] = float("-inf")
    top = gram.amax(1, keepdim=True)  # G T of the largest logit
    # exp((G T - top) / tau), in one op, then its sum.
    total = torch.add(top / -hyper.temperature, gram, alpha=1 / hyper.temperature, out=gram)
    return (top.squeeze(1) / hyper.temperature).add_(total.exp_().sum(1).log_())


def backward_block(
    gram: Tensor, rows: BlockRows, s: Tensor | None, lse: Tensor, hyper: Hyper
) -> tuple[Tensor, ...]:
    """``dL/dG`` of the block (2b, 2N) and, through T, ``dL/da``, ``dL/dpos_dist``, ``dL/ds`` of
    the rows (2b,) and ``dL/ds`` of the columns (2N,), all divided by ``dL / (2n tau)``."""
    b = len(gram) // 2
    i = torch.arange(2 * b, device=gram.device)
    if not hyper.tension:
        p = torch.add(-lse[:, None], gram, alpha=1 / hyper.temperature, out=gram).exp_()
        p[i, rows.self_cols] = 0.0  # P, the softmax
        p[i, rows.pos_cols] -= 1.0  # - Y
        return p, None, None, None, None

    x, inv = raw_tension(gram, rows, s, hyper.tol)
    t = torch.clamp(x, hyper.t_min, 1.0, out=scratch("t", gram.shape, gram))
    if hyper.through_t:
        x = torch.eq(x, t, out=x).mul_(gram)  # G where T is the raw tension, else 0
    # P, the softmax, into the Gram rows' buffer.
    p = torch.addcmul(-lse[:, None], gram, t, value=1 / hyper.temperature, out=gram).exp_()
    p[i, rows.self_cols] = 0.0
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

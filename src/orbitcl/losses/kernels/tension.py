"""ORL's tension, written once: the formula, its rounding tolerance and its fallbacks.

``T[i, k] = u_i . (z_k - z_i) / ||z_k - z_i||`` with ``u_i = (z_p(i) - z_i) / ||z_p(i) - z_i||``,
on unit vectors, clamped to ``[t_min, 1]``; ``T[i, p(i)] = 1`` (``docs/orl.md``). On unit anchors
everything but the per-anchor terms comes from Gram entries:

    u_i . (z_k - z_i) ||z_p(i) - z_i|| = G[p(i), k] - G[i, k] - a_i,  a_i = (z_p(i) - z_i) . z_i
    ||z_k - z_i||^2 = s_i + s_k - 2 G[i, k],                          s_k = ||z_k||^2

``raw_tension`` is that formula; every user (the reference ``tension_rows`` below, the blocked
kernels of ORL, its controls, MoCo-ORL's queue) calls it. The fallbacks: where a direction is
undefined T is 1, NT-Xent's logit, a constant through which no gradient flows: the self entry,
the positive, a duplicate negative (``||z_k - z_i||^2`` below ``anchors.tolerance``) and every
negative of an anchor whose views coincide. (Falling back to t_min instead would silence all
negatives of a perfectly aligned anchor and make collapse a minimum of ORL.)
"""

import torch
from torch import Tensor

from orbitcl.losses.kernels.anchor_terms import anchor_terms
from orbitcl.losses.kernels.anchors import tolerance


def raw_tension(
    gram: Tensor,
    gram_pos: Tensor,
    a: Tensor,
    pos_dist: Tensor,
    s_rows: Tensor,
    s: Tensor,
    tol: float,
    out: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The tension of anchor rows against columns, before clamping and fallbacks.

    ``gram`` (r, c): ``G[i, k]``; ``gram_pos`` (r, c): ``G[p(i), k]``, the Gram row of each row's
    positive; ``a``, ``pos_dist`` (``||z_p(i) - z_i||``, never 0) and ``s_rows`` (``||z_i||^2``)
    of the rows (r,); ``s`` of the columns (c,). Returns the raw tension x (r, c),
    ``inv = ||z_k - z_i||^-1`` (1 where that is noise) and the noise itself (bool, (r, c)): the
    self entry and duplicate negatives. Noise becomes 1 *before* the rsqrt: masking a 0/0
    afterwards would still give NaN gradients.

    ``out``: two (r, c) buffers that receive x and inv (the eager kernels' scratch, ``gram`` and
    ``gram_pos`` untouched); then no boolean matrix is made (the kernels that read them are not
    vectorised): the noise is returned as None, and its inv is ``tol^-1/2`` (the largest inv
    there is), from which the caller finds it. Without ``out`` every result is a new tensor and
    autograd and torch.compile take the function as it is (its in-place ops act on its own
    temporaries).
    """
    x, inv = out if out is not None else (None, None)
    sq = torch.add(s, gram, alpha=-2, out=inv).add_(s_rows[:, None])  # ||z_k - z_i||^2
    if out is None:
        noise = sq < tol
        inv = sq.masked_fill_(noise, 1.0).rsqrt_()
    else:
        noise, inv = None, sq.clamp_(min=tol).rsqrt_()
    x = torch.sub(gram_pos, gram, out=x).sub_(a[:, None]).mul_(inv).div_(pos_dist[:, None])
    return x, inv, noise


def clamped(x: Tensor, fixed: Tensor, t_min: float) -> Tensor:
    """T: the raw tension ``x`` clamped to ``[t_min, 1]``, 1 where ``fixed`` (the fallbacks)."""
    return torch.where(fixed, 1.0, x.clamp(t_min, 1.0))


def tension_rows(z_rows: Tensor, z: Tensor, gram: Tensor, cols: Tensor, t_min: float) -> Tensor:
    """T (2n, 2N), rows R (``anchors.anchor_rows``): from the anchors R (2n, d), all unit anchors
    z (2N, d), their Gram rows ``z_rows z^T`` and the columns R (2n,) of the rows; the self
    entries ``T[j, cols[j]]`` are 1 (a fallback), to be read as undefined.

    Everything a row of T needs is in that row and the row of its positive, which is also in R:
    a DDP rank computes the tension of its anchors against the global batch, exactly. Plain
    autograd: the reference for the blocked kernels, and what the control losses use.
    """
    n = len(z_rows) // 2
    rows = torch.arange(2 * n, device=z.device)
    terms = anchor_terms(z_rows, z)
    x, _, noise = raw_tension(
        gram, gram.roll(n, 0), terms.a, terms.pos_dist, terms.s[cols], terms.s, tolerance(z)
    )
    fixed = noise | terms.views_coincide[:, None]  # (2n, 2N)
    fixed[rows, cols] = True  # the self entries, whatever their rounding
    fixed[rows, cols.roll(n)] = True  # T[i, p(i)] = 1 by definition
    return clamped(x, fixed, t_min)

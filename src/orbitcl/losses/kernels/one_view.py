"""NT-Xent over one view's columns: without tension, ``cross_view`` and ``within_view`` need, for
each row, only the N columns of one view (and, ``within_view``, its positive's logit), so the
blocked kernels compute those (2b, N) Gram rows alone: half the matmuls and half the elementwise
work of ``all``. (ORL's tension needs the full Gram rows: ``eager`` and ``compiled`` leave the
other view out of its softmax instead.) Rows follow ``blocked``: a block's 2b rows are
``[images lo..hi of view a; the same of view b]``, whose own image is ``self_cols mod N``.
"""

import torch
from torch import Tensor

from orbitcl.losses.kernels.eager import logsumexp_
from orbitcl.losses.kernels.rows import BlockRows, Hyper
from orbitcl.losses.kernels.workspace import scratch


def applies(hyper: Hyper) -> bool:
    return not hyper.tension and hyper.negatives != "all"


def _views(z: Tensor, negatives: str) -> tuple[Tensor, Tensor]:
    """The columns of the rows of view a and of view b: each (N, d)."""
    n = len(z) // 2
    z_a, z_b = z[:n], z[n:]
    return (z_b, z_a) if negatives == "cross_view" else (z_a, z_b)


def _gram(z_block: Tensor, z: Tensor, negatives: str) -> Tensor:
    """(2b, N): each row against its view's columns, in a scratch buffer."""
    b = len(z_block) // 2
    first, second = _views(z, negatives)
    gram = scratch("gram", (2 * b, len(first)), z)
    torch.mm(z_block[:b], first.T, out=gram[:b])
    torch.mm(z_block[b:], second.T, out=gram[b:])
    return gram


def forward_block(z_block: Tensor, z: Tensor, rows: BlockRows, hyper: Hyper):
    """``(logsumexp, the positive's logit)`` of each row (2b,), as ``blocked`` keeps them."""
    tau, n = hyper.temperature, len(z) // 2
    gram = _gram(z_block, z, hyper.negatives)
    i, image = torch.arange(len(gram), device=gram.device), rows.self_cols % n
    if hyper.negatives == "cross_view":  # the positive is the row's own image in the other view
        positive = gram[i, image] / tau
        return logsumexp_(gram, tau), positive
    positive = (z_block * z[rows.pos_cols]).sum(1) / tau  # within_view: the other view
    gram[i, image] = float("-inf")  # the anchor itself
    return torch.logaddexp(logsumexp_(gram, tau), positive), positive


def backward_block(z_block: Tensor, z: Tensor, rows: BlockRows, lse: Tensor, hyper: Hyper, grad_z):
    """``dL/dz_block`` (2b, d), and ``dL/dz`` (2N, d) added into ``grad_z``, both divided by
    ``dL / (2n tau)``: with P the softmax and Y the positive, ``dL/dG = P - Y`` on the row's
    columns and, for ``within_view``, ``p_pos - 1`` on its positive's logit."""
    tau, b, n = hyper.temperature, len(z_block) // 2, len(z) // 2
    first, second = _views(z, hyper.negatives)
    gram = _gram(z_block, z, hyper.negatives)
    i, image = torch.arange(len(gram), device=gram.device), rows.self_cols % n
    p = torch.add(-lse[:, None], gram, alpha=1 / tau, out=gram).exp_()  # P
    if hyper.negatives == "cross_view":
        p[i, image] -= 1.0  # - Y
    else:
        p[i, image] = 0.0  # the anchor itself
    grad_rows = torch.cat([p[:b] @ first, p[b:] @ second])  # dG z
    own = slice(n, 2 * n) if hyper.negatives == "cross_view" else slice(0, n)
    other = slice(0, n) if own.start else slice(n, 2 * n)
    grad_z[own].addmm_(p[:b].T, z_block[:b])  # dG^T z_block, by the view of the columns
    grad_z[other].addmm_(p[b:].T, z_block[b:])
    if hyper.negatives == "within_view":  # the positive's logit z_i . z_p(i)
        partner = z[rows.pos_cols]
        d_pos = ((z_block * partner).sum(1) / tau - lse).exp_().sub_(1.0)  # p_pos - 1
        grad_rows += d_pos[:, None] * partner
        grad_z.index_add_(0, rows.pos_cols, d_pos[:, None] * z_block)
    return grad_rows

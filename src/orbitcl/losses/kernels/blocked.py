"""NT-Xent and ORL over blocks of Gram rows, with a hand-written backward.

Autograd through ``tension.tension_rows`` keeps about ten (2n, 2N) intermediates and walks every
elementwise op twice; at 2N = 4096 and d = 128 that costs several times the matmuls. Here the
forward goes through the anchors in blocks of images (both views of each, so every row's
positive is in its block, see ``anchors.anchor_rows``), computes the block's Gram rows, its tension
and its logsumexp, and keeps only the logsumexp of each row. The backward recomputes each block
(one more matmul, as FlashAttention does) and turns it, in place, into the gradient with
respect to the block's Gram rows, which it multiplies into both factors of ``G = z_rows z^T``.
No (2n, 2N) matrix outlives a block; a block's temporaries live in reused scratch buffers
(``workspace``). The elementwise work of a block is ``eager``'s, or for ORL on large batches
``compiled``'s (the ``backend``, see ``kernels_for``); ``benchmarks/bench_losses.py`` measures
both.

The gradient, for row i, column k, all scaled by ``dL / (2n tau)`` (the loss is a mean over the
2n rows): with ``P`` the softmax of the logits ``G T / tau`` (0 at k = i) and ``Y`` the one-hot
of ``p(i)``,

    dL/dG[i, k] (direct)  = (P - Y) T
    V = P G               where T is the raw tension (not clamped, no fallback; so not at
                          k = p(i), and Y drops out), else 0
    raw tension x = num inv / pos_dist, num = G[p(i), k] - G[i, k] - a_i,
    inv = ||z_k - z_i||^-1 = (s_i + s_k - 2 G[i, k])^-1/2, s = ||z||^2, a_i = (z_p(i) - z_i) . z_i:
    A = V inv / pos_dist  (dL/dnum),  C = V T inv^2  (-2 dL/d||z_k - z_i||^2),
    dL/dG[i, k] (via T)   = C - A + A[p(i), k]   (the last: num of row p(i) holds +G[i, k]),
    dL/da_i = -sum_k A,   dL/dpos_dist_i = -sum_k V T / pos_dist_i,
    dL/ds_i = -sum_k C / 2 (row sums),  dL/ds_k = -sum_i C / 2 (column sums).

The per-anchor terms (``a``, ``pos_dist``, ``s``) are O(Nd) (``anchor_terms``), and so is the
backward that turns their gradients into gradients of the anchors.
"""

import os
from contextlib import nullcontext

import torch
from torch import Tensor

from orbitcl.losses.kernels import compiled, eager, one_view
from orbitcl.losses.kernels.anchor_terms import AnchorTerms, anchor_terms, anchor_terms_backward
from orbitcl.losses.kernels.precision import ieee_fp32
from orbitcl.losses.kernels.rows import BlockRows, Hyper
from orbitcl.losses.kernels.targets import ClassTargets, LogitTargets
from orbitcl.losses.kernels.workspace import scratch

# A block's temporaries are (2b, 2N) each, about this many bytes: 2N = 4096 in float32 is one
# block. Fewer, larger blocks mean fewer ops, which matters most on a shared CPU (``eager``).
BLOCK_BYTES = 64 * 2**20

# ORL's elementwise kernels: "eager" (``eager``), "compile" (``compiled``: torch.compile,
# falling back to eager where it fails) or "auto": compiled for Gram rows of at least
# AUTO_COMPILE_ENTRIES entries, where a first call's compile time (tens of seconds) pays for
# itself within a run; eager below, e.g. in tests. NT-Xent's few ops always run eagerly.
BACKENDS = ("auto", "eager", "compile")
AUTO_COMPILE_ENTRIES = 4096 * 4096
BACKEND_VARIABLE = "ORBITCL_LOSS_KERNELS"


def default_backend() -> str:
    """The backend of a loss built without one: ``$ORBITCL_LOSS_KERNELS``, else "auto"."""
    return os.environ.get(BACKEND_VARIABLE, "auto")


def check_backend(backend: str) -> None:
    """Raise ValueError unless ``backend`` is one of ``BACKENDS``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is invalid: must be one of {', '.join(BACKENDS)}")


def kernels_for(hyper: Hyper, n_rows: int, n_cols: int):
    """The module of elementwise kernels for (n_rows, n_cols) Gram rows: see ``BACKENDS``."""
    check_backend(hyper.backend)
    if not hyper.tension or hyper.backend == "eager":
        return eager
    if hyper.backend == "compile" or n_rows * n_cols >= AUTO_COMPILE_ENTRIES:
        return compiled
    return eager


def _blocks(n: int, n_cols: int, itemsize: int) -> list[tuple[int, int]]:
    """Image ranges [lo, hi) of the blocks; a block holds the rows of those images' two views."""
    b = max(1, BLOCK_BYTES // (2 * n_cols * itemsize))
    return [(lo, min(lo + b, n)) for lo in range(0, n, b)]


def _block(x: Tensor | None, n: int, lo: int, hi: int) -> Tensor | None:
    """Rows ``[lo, hi)`` and ``[n + lo, n + hi)`` of x (2n, ...): the block's two views."""
    if x is None or (lo, hi) == (0, n):
        return x
    return torch.cat([x[lo:hi], x[n + lo : n + hi]])


def _unblock(parts: list[Tensor], blocks: list[tuple[int, int]]) -> Tensor:
    """The inverse of ``_block``: the blocks' rows (2b, ...) back in the order of x (2n, ...)."""
    if len(parts) == 1:
        return parts[0]
    sizes = [hi - lo for lo, hi in blocks]
    first = [part[:b] for part, b in zip(parts, sizes, strict=True)]
    return torch.cat(first + [part[b:] for part, b in zip(parts, sizes, strict=True)])


def _gram(z_block: Tensor, z: Tensor) -> Tensor:
    """The block's Gram rows ``z_block z^T`` (2b, 2N), in a scratch buffer."""
    return torch.mm(z_block, z.T, out=scratch("gram", (len(z_block), len(z)), z))


def _pinned(hyper: Hyper):
    """IEEE fp32 for ORL's products (its tension subtracts Gram entries); NT-Xent's logits
    tolerate TF32's rounding like any matmul, and keep its speed."""
    return ieee_fp32() if hyper.tension else nullcontext()


def _per_row(terms: AnchorTerms | None, cols: Tensor) -> tuple[Tensor, ...]:
    """The fields of ``BlockRows`` for all rows (2n,): see there."""
    per_row = (cols, cols.roll(len(cols) // 2))
    if terms is None:
        return per_row
    return per_row + (terms.a, terms.pos_dist, terms.s[cols], terms.views_coincide)


class BlockedInfoNCE(torch.autograd.Function):
    """``mean_i [-logit[i, p(i)] + logsumexp_{k != i} logit[i, k]]`` over the rows of
    ``z_rows`` (2n, d; ``anchors.anchor_rows``, whose own columns are ``cols``), with
    ``logit = (z_rows z^T) * T / tau`` against all anchors ``z`` (2N, d).

    ``targets`` (2n, 2N), rows summing to 1 and zero at k = i, replace the one-hot positive by
    weights W (weighted InfoNCE, ``losses.weighted``): ``mean_i [-sum_k W_ik logit[i, k] +
    logsumexp_{k != i} logit[i, k]]``, whose gradient is ``(P - W) / tau``. No gradient flows
    into W, and there is no tension with targets. W is a tensor, or one of the forms of
    ``targets``: ``ClassTargets`` (applied through class sums: ``z_i . (W z)_i`` forward, ``- W z``
    and ``- W^T z_rows`` after the blocks' backward) or ``LogitTargets`` (each block's
    ``exp(l)`` computed in the forward, with its row sums Z, and again in the backward).

    ``hyper`` (a ``Hyper``): without tension T = 1, NT-Xent; with it, T is ORL's tension clamped
    to ``[t_min, 1]``, with gradients through T if ``through_t``. Everything runs in the dtype of
    z, also under autocast. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, z_rows: Tensor, z: Tensor, cols: Tensor, hyper: Hyper, targets=None) -> Tensor:
        if targets is not None and (hyper.tension or hyper.negatives != "all"):
            raise ValueError("weighted targets are defined for NT-Xent's logits over all anchors")
        n = len(z_rows) // 2
        kernels = kernels_for(hyper, len(z_rows), len(z))
        blocks = _blocks(n, len(z), z.element_size())
        lse, pos_logit = [], []
        by_class = isinstance(targets, ClassTargets)
        logits = targets if isinstance(targets, LogitTargets) else None
        dense = targets if isinstance(targets, Tensor) else None
        inv_z = []  # LogitTargets: 1 / Z of each row
        # Autocast would run the matmuls in half precision; with tension, its Gram rows in IEEE
        # fp32 whatever the global TF32 setting (kernels.precision).
        with torch.autocast(z.device.type, enabled=False), _pinned(hyper):
            terms = anchor_terms(z_rows, z) if hyper.tension else None
            per_row, s = _per_row(terms, cols), terms.s if terms else None
            for lo, hi in blocks:
                rows = BlockRows(*(_block(x, n, lo, hi) for x in per_row))
                if one_view.applies(hyper):  # NT-Xent over one view's columns
                    z_block = _block(z_rows, n, lo, hi)
                    block_lse, positive = one_view.forward_block(z_block, z, rows, hyper)
                    lse.append(block_lse)
                    pos_logit.append(positive)
                    continue
                gram = _gram(_block(z_rows, n, lo, hi), z)
                i = torch.arange(len(gram), device=gram.device)
                if targets is None:  # T[i, p(i)] = 1
                    pos_logit.append(gram[i, rows.pos_cols] / hyper.temperature)
                elif dense is not None:  # sum_k W_ik G_ik / tau
                    weights = _block(dense, n, lo, hi)
                    positive = torch.mul(weights, gram, out=scratch("targets", gram.shape, gram))
                    pos_logit.append(positive.sum(1).div_(hyper.temperature))
                elif logits is not None:  # sum_k exp(l_ik) G_ik / (Z_i tau)
                    kernel = logits.block(_block(logits.left, n, lo, hi), rows.self_cols)
                    inv_z.append(kernel.sum(1).reciprocal_())
                    positive = kernel.mul_(gram).sum(1).mul_(inv_z[-1])
                    pos_logit.append(positive.div_(hyper.temperature))
                lse.append(kernels.forward_block(gram, rows, s, hyper))
            lse = _unblock(lse, blocks)
            if by_class:  # sum_k W_ik G_ik = z_i . (W z)_i, without the Gram rows
                pos_logit = (
                    torch.linalg.vecdot(z_rows, targets.times(z, z_rows)) / hyper.temperature
                )
            else:
                pos_logit = _unblock(pos_logit, blocks)
        ctx.hyper, ctx.terms, ctx.kernels = hyper, terms, kernels
        ctx.class_targets = targets if by_class else None  # not tensors: kept on ctx
        ctx.logits = logits
        inv_z = _unblock(inv_z, blocks) if inv_z else None
        ctx.save_for_backward(z_rows, z, cols, lse, dense, inv_z)
        return (lse - pos_logit).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        z_rows, z, cols, lse, dense, inv_z = ctx.saved_tensors
        logits = ctx.logits
        hyper, terms, class_targets = ctx.hyper, ctx.terms, ctx.class_targets
        n = len(z_rows) // 2
        blocks = _blocks(n, len(z), z.element_size())
        grad_rows, grad_z, d_rows, d_s = [], None, [], None
        with torch.autocast(z.device.type, enabled=False), _pinned(hyper):
            per_row, s = _per_row(terms, cols), terms.s if terms else None
            for lo, hi in blocks:
                rows = BlockRows(*(_block(x, n, lo, hi) for x in per_row))
                z_block = _block(z_rows, n, lo, hi)  # (2b, d)
                if one_view.applies(hyper):
                    grad_z = torch.zeros_like(z) if grad_z is None else grad_z
                    block_lse = _block(lse, n, lo, hi)
                    d_rows_block = one_view.backward_block(
                        z_block, z, rows, block_lse, hyper, grad_z
                    )
                    grad_rows.append(d_rows_block)
                    continue
                gram = _gram(z_block, z)  # recomputed, as in the forward
                if class_targets is not None:  # P here; - W after the loop
                    d_gram = eager.softmax_(gram, rows, _block(lse, n, lo, hi), hyper.temperature)
                    d_terms = ()
                elif logits is not None:  # P - exp(l) / Z
                    d_gram = eager.softmax_(gram, rows, _block(lse, n, lo, hi), hyper.temperature)
                    kernel = logits.block(_block(logits.left, n, lo, hi), rows.self_cols)
                    d_gram.addcmul_(kernel, _block(inv_z, n, lo, hi)[:, None], value=-1.0)
                    d_terms = ()
                else:
                    weights = {} if dense is None else {"targets": _block(dense, n, lo, hi)}
                    d_gram, *d_terms = ctx.kernels.backward_block(
                        gram, rows, s, _block(lse, n, lo, hi), hyper, **weights
                    )
                if hyper.through_t:  # dL/d(a, pos_dist, s_rows) (2b, 3) and dL/ds (2N,)
                    d_rows.append(torch.stack(d_terms[:3], 1))
                    d_s = d_terms[3] if d_s is None else d_s.add_(d_terms[3])
                # G = z_rows z^T: dL/dz_rows = dG z, dL/dz = dG^T z_rows.
                grad_rows.append(d_gram @ z)
                if grad_z is None:
                    grad_z = d_gram.T @ z_block
                else:
                    grad_z.addmm_(d_gram.T, z_block)
            grad_rows = _unblock(grad_rows, blocks)
            if class_targets is not None:  # (P - W) z and (P - W)^T z_rows
                grad_rows -= class_targets.times(z, z_rows)
                grad_z -= class_targets.transposed_times(z_rows)
            if hyper.through_t:
                d_a, d_pos_dist, d_s_rows = _unblock(d_rows, blocks).unbind(1)
                d_anchor_rows, d_anchors = anchor_terms_backward(
                    terms, z_rows, z, d_a, d_pos_dist, d_s_rows, d_s
                )
                grad_rows += d_anchor_rows
                grad_z += d_anchors
            factor = grad / (2 * n * hyper.temperature)
            return grad_rows.mul_(factor), grad_z.mul_(factor), None, None, None

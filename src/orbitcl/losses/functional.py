"""Contrastive losses over two views as pure functions: NT-Xent, ORL and ORL's tension.

Conventions are those of ``docs/orl.md``: ``z_a`` and ``z_b`` are un-normalised ``(N, d)``
projector outputs, row n of each from image n. The 2N anchors are
``z = normalize(cat([z_a, z_b]))`` and anchor i's positive is ``p(i) = i + N`` for ``i < N``,
else ``i - N``. Losses are means over all 2N anchors.

``images`` (a slice of ``range(N)``, default all) restricts a loss to the 2n anchors of those
images, ``[z_a[images]; z_b[images]]``, each still contrasted with all 2N columns: the rows R of
the one-process loss. This is how a DDP rank computes its share of the global loss (see
``orbitcl.losses.gather``): with equal slices, the mean of the ranks' losses is the loss over all
2N anchors. One process uses R = all rows, through the same code.

Every (2n, 2N) quantity comes from the Gram rows ``G = z[R] z^T`` (the only matmul) and
per-anchor O(Nd) terms, never from a (2n, 2N, d) tensor. It is computed in float32 at least
(float64 stays float64), even under autocast, and so are T and the losses.

``ntxent`` and ``orl`` run on ``orbitcl.losses.blocked``: blocks of Gram rows with a hand-written
backward, no (2n, 2N) matrix kept from forward to backward. ``tension`` and the helpers below
(``_tension``, ``_info_nce``, which the control losses build on) are plain autograd: the
reference formulation, equal to the blocked losses to rounding.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses.anchor_terms import anchor_terms, tolerance
from orbitcl.losses.block_rows import Hyper
from orbitcl.losses.blocked import BlockedInfoNCE


def check_temperature(temperature: float) -> None:
    """Raise ValueError unless temperature > 0."""
    if not temperature > 0:  # `not >` also rejects NaN
        raise ValueError(f"temperature={temperature} is invalid: must be > 0")


def check_t_min(t_min: float) -> None:
    """Raise ValueError unless t_min is in (0, 1]."""
    if not 0 < t_min <= 1:
        raise ValueError(f"t_min={t_min} is invalid: must be in (0, 1]")


def _anchors(z_a: Tensor, z_b: Tensor, min_n: int, need: str) -> Tensor:
    """The (2N, d) unit anchors ``[z_a; z_b]``, upcast to float32 at least."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"z_a and z_b must both have shape (N, d), got {tuple(z_a.shape)} and "
            f"{tuple(z_b.shape)}"
        )
    if len(z_a) < min_n:
        raise ValueError(f"z_a has N={len(z_a)} rows: {need} needs N >= {min_n}")
    z = torch.cat([z_a, z_b])
    # In fp16/bf16, 1 - cos near aligned pairs is below the resolution and T is noise.
    return F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)


def _rows(z: Tensor, images: slice | None) -> tuple[Tensor, Tensor]:
    """The anchors R of ``images``, ``z[R]`` (2n, d), and their columns R (2n,) in the Gram rows.

    R is ordered ``[images of view a; images of view b]``, so that the positive of row j is row
    ``j + n`` (``j - n``): the Gram rows of the positives are the Gram rows rolled by n. One
    process (``images=None``) takes all rows, R = ``arange(2N)``, and ``z`` itself (no copy).
    """
    n_all = len(z) // 2
    own = range(n_all)[slice(None) if images is None else images]
    if own.step != 1 or len(own) == 0:
        raise ValueError(
            f"images={images} is invalid: must be a non-empty slice of range({n_all}) with step 1"
        )
    first = torch.arange(own.start, own.stop, device=z.device)  # (n,)
    cols = torch.cat([first, first + n_all])  # (2n,)
    return (z if images is None else z[cols]), cols


def _gram(z_rows: Tensor, z: Tensor) -> Tensor:
    # Autocast would run the matmul in half precision and undo the upcast of _anchors.
    with torch.autocast(z.device.type, enabled=False):
        return z_rows @ z.T  # (2n, 2N)


def _tension(z_rows: Tensor, z: Tensor, gram: Tensor, cols: Tensor, t_min: float) -> Tensor:
    """T (2n, 2N), rows R: from the anchors R (2n, d), all unit anchors z (2N, d), their Gram
    rows ``z_rows z^T`` and the columns R (2n,) of the rows; ``T[j, cols[j]]`` is arbitrary.

    Everything a row of T needs is in that row and the row of its positive, which is also in R:
    a DDP rank computes the tension of its anchors against the global batch, exactly.

    Memory: each (2n, 2N) matrix is 256 MiB at 2n = 2N = 8192, so ops are in place wherever
    autograd does not need the overwritten input; otherwise they are out of place, since an
    in-place op would make autograd save a copy of its input anyway.
    """
    n = len(z_rows) // 2
    rows = torch.arange(2 * n, device=z.device)  # with cols: the self entries (rows, cols)
    tol = tolerance(z)

    # Where a direction is undefined, T falls back to 1, NT-Xent's logit: an exact duplicate of
    # the anchor, or every negative of an anchor whose views coincide, is repelled as NT-Xent
    # would. (Falling back to t_min instead would silence all negatives of a perfectly aligned
    # anchor and make collapse a minimum of ORL.) The fallback entries are constant, so no
    # gradient flows through their undefined directions.

    _, a, pos_dist, views_coincide, sq_norm = anchor_terms(z_rows, z)

    # Numerator (z_p(i) - z_i) . (z_k - z_i) = G[p(i), k] - G[i, k] - (z_p(i) - z_i) . z_i, with
    # G[p(i), :] = the Gram rows rolled by n (see _rows).
    num = gram.roll(n, 0).sub_(gram).sub_(a[:, None])  # (2n, 2N)

    # ||z_k - z_i||^2 = G[i, i] + G[k, k] - 2 G[i, k]. Where it is noise, i.e. the self entry and
    # duplicate negatives (fallback), it becomes 1 *before* the rsqrt (masking a 0/0 afterwards
    # would still give NaN gradients). A bool mask is what backward stores, not a float matrix.
    sq_dist = (sq_norm[cols, None] + sq_norm).sub_(gram, alpha=2)  # (2n, 2N)
    coincide = sq_dist < tol  # (2n, 2N)
    coincide[rows, cols] = True  # the self entries, whatever their rounding
    inv_dist = torch.where(coincide, 1.0, sq_dist).rsqrt_()  # (2n, 2N)

    t = (num * inv_dist / pos_dist[:, None]).clamp(t_min, 1.0)  # (2n, 2N)
    # clamp's backward needs only its input, so its output may be overwritten in place.
    t.masked_fill_(coincide | views_coincide[:, None], 1.0)
    # T[i, p(i)] = 1 by definition, so the positive's logit is NT-Xent's; computed, it would be
    # 1 only up to rounding (noise when the views align).
    t[rows, cols.roll(n)] = 1.0
    return t


def _info_nce(logits: Tensor, cols: Tensor) -> Tensor:
    """Mean over the anchors R (rows of ``logits``, (2n, 2N), at columns ``cols``) of
    ``-logits[i, p(i)] + logsumexp_{k != i} logits[i, k]``."""
    n = len(logits) // 2
    # k = i is left out of the logsumexp as a -inf logit, which also has zero gradient.
    logits[torch.arange(2 * n, device=logits.device), cols] = float("-inf")
    return F.cross_entropy(logits, cols.roll(n))  # target: p(i)'s column


def tension(z_a: Tensor, z_b: Tensor, t_min: float = 1e-6, images: slice | None = None) -> Tensor:
    """ORL's tension T (2N, 2N), rows and columns ordered ``[z_a; z_b]``.

    ``T[i, k] = u_i . (z_k - z_i) / ||z_k - z_i||`` with ``u_i = (z_p(i) - z_i) / ||...||``, on
    unit vectors, clamped to ``[t_min, 1]``; ``T[i, p(i)] = 1``. The self entries ``T[i, i]``
    are undefined and set to 0. Where a direction is undefined, T falls back to 1 (NT-Xent's
    logit): for every negative of an anchor whose views coincide (``u_i`` undefined), and for a
    duplicate negative (``z_k = z_i``). float32 at least. With ``images``, only the 2n rows of
    those images' anchors (2n, 2N).
    """
    check_t_min(t_min)
    z = _anchors(z_a, z_b, 1, "tension")
    z_rows, cols = _rows(z, images)
    t = _tension(z_rows, z, _gram(z_rows, z), cols, t_min)
    t[torch.arange(len(cols), device=t.device), cols] = 0.0  # undefined: z_k - z_i = 0
    return t


def ntxent(z_a: Tensor, z_b: Tensor, temperature: float, images: slice | None = None) -> Tensor:
    """NT-Xent: ``mean_i [-sim(i, p(i)) / tau + logsumexp_{k != i} sim(i, k) / tau]``, the mean
    over the anchors of ``images`` (default: all)."""
    check_temperature(temperature)
    z = _anchors(z_a, z_b, 2, "NT-Xent (at least one negative per anchor)")
    z_rows, cols = _rows(z, images)
    hyper = Hyper(temperature, 1.0, 0.0, tension=False, through_t=False)
    return BlockedInfoNCE.apply(z_rows, z, cols, hyper)


def orl(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t_min: float = 1e-6,
    detach_tension: bool = False,
    images: slice | None = None,
) -> Tensor:
    """ORL: ``mean_i [-sim(i, p(i)) / tau + logsumexp_{k != i} sim(i, k) T[i, k] / tau]``, the
    mean over the anchors of ``images`` (default: all).

    ``T = tension(z_a, z_b, t_min)``; ``T[i, p(i)] = 1`` keeps the positive's term NT-Xent's.
    Gradients flow through T unless ``detach_tension``.
    """
    check_temperature(temperature)
    check_t_min(t_min)
    z = _anchors(z_a, z_b, 2, "ORL (at least one negative per anchor)")
    z_rows, cols = _rows(z, images)
    hyper = Hyper(temperature, t_min, tolerance(z), tension=True, through_t=not detach_tension)
    return BlockedInfoNCE.apply(z_rows, z, cols, hyper)

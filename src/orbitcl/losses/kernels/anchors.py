"""The anchors of a two-view batch, the rows a process owns, and their Gram rows.

Conventions (``docs/orl.md``): ``z_a`` and ``z_b`` are un-normalised ``(N, d)`` projector outputs,
row n of each from image n. The 2N anchors are ``z = normalize(cat([z_a, z_b]))`` and anchor i's
positive is ``p(i) = i + N`` for ``i < N``, else ``i - N``.

``images`` (a slice of ``range(N)``, default all) restricts a loss to the 2n anchors of those
images, ``[z_a[images]; z_b[images]]``, each still contrasted with all 2N columns: the rows R of
the one-process loss. This is how a DDP rank computes its share of the global loss (see
``orbitcl.losses.gather``). One process uses R = all rows, through the same code.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses.kernels.negatives import leave_out_
from orbitcl.losses.kernels.precision import gram_ieee


def unit_anchors(z_a: Tensor, z_b: Tensor, min_n: int, need: str) -> Tensor:
    """The (2N, d) unit anchors ``[z_a; z_b]``, upcast to float32 at least.

    ``need`` names the loss for the error raised when N < ``min_n``.
    """
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


def anchor_rows(z: Tensor, images: slice | None) -> tuple[Tensor, Tensor]:
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


def tolerance(z: Tensor) -> float:
    """Squared distances between unit vectors ``z`` (.., d) below this are rounding noise.

    A dot product of d-dim unit vectors is rounded by ~sqrt(d) eps (measured up to d = 8192,
    fp32 and fp64), so a squared distance below it is noise, and so is its direction.
    """
    return 4 * z.shape[-1] ** 0.5 * torch.finfo(z.dtype).eps


def gram_rows(z_rows: Tensor, z: Tensor) -> Tensor:
    """``z_rows z^T`` (2n, 2N), in the dtype of the anchors, IEEE fp32 at least.

    Autocast would run the matmul in half precision and undo the upcast of ``unit_anchors``;
    TF32 would make the tension built from these rows noise (``kernels.precision``).
    """
    with torch.autocast(z.device.type, enabled=False):
        return gram_ieee(z_rows, z)


def info_nce(logits: Tensor, cols: Tensor, negatives: str = "all") -> Tensor:
    """Mean over the anchors R (rows of ``logits``, (2n, 2N), at columns ``cols``) of
    ``-logits[i, p(i)] + logsumexp_k logits[i, k]``, k over p(i) and the ``negatives`` of i
    (``negatives.leave_out_``). Overwrites the entries left out."""
    n = len(logits) // 2
    # Columns are left out of the logsumexp as -inf logits, which also have zero gradient.
    leave_out_(logits, cols, cols.roll(n), negatives, float("-inf"))
    return F.cross_entropy(logits, cols.roll(n))  # target: p(i)'s column


class Opening(NamedTuple):
    """What a dense loss over the anchors R of ``images`` opens with (``dense_opening``)."""

    z: Tensor  # (2N, d): all unit anchors, the columns
    z_rows: Tensor  # (2n, d): the anchors R, the rows
    cols: Tensor  # (2n,): each row's own column
    rows: Tensor  # (2n,): 0 .. 2n - 1, to index one entry per row
    positive_cols: Tensor  # (2n,): p(i), each row's positive's column
    gram: Tensor  # (2n, 2N): z[R] z^T


def dense_opening(z_a: Tensor, z_b: Tensor, images: slice | None, need: str) -> Opening:
    """The unit anchors, the rows of ``images`` and their Gram rows: the opening of every loss
    that materialises its (2n, 2N) logits. ``need`` names the loss when N < 2 (one negative per
    anchor at least)."""
    z = unit_anchors(z_a, z_b, 2, need)
    z_rows, cols = anchor_rows(z, images)
    rows = torch.arange(len(cols), device=z.device)
    return Opening(z, z_rows, cols, rows, cols.roll(len(cols) // 2), gram_rows(z_rows, z))


def split_positive_(logits: Tensor, opening: Opening) -> Tensor:
    """The positive logits ``logits[i, p(i)]`` (2n,), and ``logits`` (2n, 2N) left with the
    negatives only: -inf, in place, at i and p(i) (zero gradient in a logsumexp). The positives
    are a copy, so the fill does not reach them."""
    positive = logits[opening.rows, opening.positive_cols]  # (2n,)
    logits[opening.rows, opening.cols] = float("-inf")
    logits[opening.rows, opening.positive_cols] = float("-inf")
    return positive

"""Which columns an anchor row contrasts with: the switch ``negatives`` (``docs/geometry.md``,
"Similarities of positives and negatives"), written once for every InfoNCE-type loss.

Rows and columns follow ``anchors.anchor_rows``: the anchors R of some images, 2n rows ordered
``[images of view a; images of view b]``, against all 2N anchors ``[view a; view b]``; ``cols``
(2n,) holds each row's own column, and ``cols.roll(n)`` its positive's. A block of the blocked
kernels has the same layout. Every row keeps its positive; its negatives are

- ``all`` (SimCLR): every column but itself and its positive, 2N - 2;
- ``cross_view`` (InfoNCE/CLIP): the other view's images but its own, N - 1;
- ``within_view`` (DHEL): its own view's images but itself, N - 1.

The columns left out of a row's softmax (``leave_out_``, ``left_out``) are the self entry and,
but for ``all``, the other N - 1 columns of one view: the same-view quadrant for ``cross_view``,
the other-view quadrant except the positive for ``within_view``.
"""

import torch
from torch import Tensor

NEGATIVES = ("all", "cross_view", "within_view")


def check_negatives(negatives: str) -> None:
    """Raise ValueError unless ``negatives`` is one of ``NEGATIVES``."""
    if negatives not in NEGATIVES:
        raise ValueError(
            f"negatives={negatives!r} is invalid: must be one of {', '.join(NEGATIVES)}"
        )


def candidates(negatives: str, n_images: int) -> int:
    """K + 1, the positive and the K negatives in each anchor's softmax, for N = ``n_images``
    images per view: 2N - 1 for ``all``, N for ``cross_view`` and ``within_view``."""
    return 2 * n_images - 1 if negatives == "all" else n_images


def leave_out_(x: Tensor, self_cols: Tensor, pos_cols: Tensor, negatives: str, fill: float):
    """Sets the entries of x (2n, 2N) outside each row's softmax to ``fill``, in place, by
    slices of the two views (a boolean matrix would cost two more passes). Returns x."""
    n, half = len(x) // 2, x.shape[1] // 2
    i = torch.arange(2 * n, device=x.device)
    if negatives == "cross_view":  # the row's own view, its self entry included
        x[:n, :half] = fill
        x[n:, half:] = fill
    elif negatives == "within_view":  # the other view, but the positive
        positive = x[i, pos_cols].clone()
        x[:n, half:] = fill
        x[n:, :half] = fill
        x[i, pos_cols] = positive
    x[i, self_cols] = fill
    return x


def quadrants(n_rows: int, n_cols: int, negatives: str, inside: bool = True) -> list:
    """(row slice, column slice) pairs: where each row's softmax lies (``inside``), but for the
    positive of ``within_view`` and the self entries; else where it does not. The eager kernels
    work on these views, so that a variant does half the elementwise work of ``all``, and no
    exp of a -inf logit (a slow path of the CPU's vectorised exp, about 2x)."""
    n, half = n_rows // 2, n_cols // 2
    own = [(slice(0, n), slice(0, half)), (slice(n, 2 * n), slice(half, 2 * half))]
    other = [(slice(0, n), slice(half, 2 * half)), (slice(n, 2 * n), slice(0, half))]
    if negatives == "all":
        return [(slice(0, n_rows), slice(0, n_cols))] if inside else []
    return (other if inside else own) if negatives == "cross_view" else (own if inside else other)


def left_out(self_cols: Tensor, pos_cols: Tensor, n_cols: int, negatives: str) -> Tensor:
    """(2n, 2N) bool, True where ``leave_out_`` fills: written as one expression, for
    torch.compile's fused kernels (``compiled``) and the boolean masks below."""
    k = torch.arange(n_cols, device=self_cols.device)
    is_self = k == self_cols[:, None]
    if negatives == "all":
        return is_self
    same_view = (k >= n_cols // 2) == (self_cols >= n_cols // 2)[:, None]
    if negatives == "cross_view":
        return same_view
    return is_self | (~same_view & (k != pos_cols[:, None]))  # within_view


def negative_mask(cols: Tensor, n_cols: int, negatives: str = "all") -> Tensor:
    """(2n, 2N) bool, True at the negatives of each row."""
    pos_cols = cols.roll(len(cols) // 2)
    mask = ~left_out(cols, pos_cols, n_cols, negatives)
    mask[torch.arange(len(cols), device=cols.device), pos_cols] = False
    return mask


def negative_cols(cols: Tensor, n_cols: int, negatives: str = "all") -> Tensor:
    """(2n, K): the columns of each row's K negatives, ascending."""
    mask = negative_mask(cols, n_cols, negatives)
    k = candidates(negatives, n_cols // 2) - 1
    # The first k columns of a stable sort that puts the negatives first: their columns in
    # ascending order, as every_col[mask] would give, without its host sync.
    return mask.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, :k]

"""The negatives of anchor rows: every column but the anchor itself and its positive.

Rows and columns follow ``anchors.anchor_rows``: the anchors R of some images, 2n
rows ordered ``[images of view a; images of view b]``, against all 2N anchors; ``cols`` (2n,)
holds each row's own column, and ``cols.roll(n)`` its positive's.
"""

import torch
from torch import Tensor


def negative_mask(cols: Tensor, n_cols: int) -> Tensor:
    """(2n, 2N) bool, True at the 2N - 2 negatives of each row (k != i, k != p(i))."""
    n = len(cols) // 2
    rows = torch.arange(2 * n, device=cols.device)
    mask = torch.ones(2 * n, n_cols, dtype=torch.bool, device=cols.device)
    mask[rows, cols] = False
    mask[rows, cols.roll(n)] = False
    return mask


def negative_cols(cols: Tensor, n_cols: int) -> Tensor:
    """(2n, 2N - 2): the columns of each row's negatives, ascending."""
    mask = negative_mask(cols, n_cols)
    every_col = torch.arange(n_cols, device=cols.device).expand_as(mask)
    return every_col[mask].view(len(cols), n_cols - 2)  # row-major: row by row

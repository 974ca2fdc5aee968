"""What a block of Gram rows needs besides the rows themselves (see ``blocked``)."""

from typing import NamedTuple

from torch import Tensor


class Hyper(NamedTuple):
    temperature: float
    t_min: float  # the tension's lower clamp (unused without tension)
    tol: float  # squared distances below it are rounding noise (``anchors.tolerance``)
    tension: bool  # False: T = 1, NT-Xent
    through_t: bool  # gradients flow through T
    backend: str = "auto"  # ORL's elementwise kernels: ``blocked.BACKENDS``
    negatives: str = "all"  # which columns each row contrasts with: ``negatives.NEGATIVES``


class BlockRows(NamedTuple):
    """Per-row terms of a block of 2b rows, ``[images lo..hi of view a; the same of view b]``,
    so that row j's positive is row ``j + b`` (``j - b``). Each is (2b,); the tension terms are
    None for NT-Xent."""

    self_cols: Tensor  # the row's own column k = i
    pos_cols: Tensor  # the column of its positive p(i)
    a: Tensor | None = None  # (z_p(i) - z_i) . z_i
    pos_dist: Tensor | None = None  # ||z_p(i) - z_i||, 1 where the views coincide
    s_rows: Tensor | None = None  # ||z_i||^2
    views_coincide: Tensor | None = None  # bool: T falls back to 1 on the whole row

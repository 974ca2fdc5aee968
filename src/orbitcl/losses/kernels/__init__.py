"""The one fast path of the InfoNCE family: anchors, Gram rows, ORL's tension and the blocked
NT-Xent/ORL kernels, public under these names for every loss in ``orbitcl.losses``.

- ``anchors``: the unit anchors of two views, the rows a process owns, their Gram rows.
- ``tension``: ORL's tension, its formula written once (``raw_tension``) and its fallbacks.
- ``anchor_terms``: the O(Nd) per-anchor terms of the tension, with their backward.
- ``blocked``: NT-Xent and ORL over blocks of Gram rows with a hand-written backward, whose
  elementwise work runs in ``eager`` (in place, into ``workspace`` buffers) or ``compiled``
  (torch.compile) kernels: the ``backend``, an argument of the losses.
- ``one_view``: NT-Xent's blocks for ``cross_view`` and ``within_view``, on one view's columns.
- ``targets``: weighted InfoNCE's weights by class (SupCon, Soft SupCon, X-CLR: through class
  sums) and by low-rank logits (y-Aware: each block computed where it is needed).
- ``negatives``: which columns are an anchor's negatives (``all``, ``cross_view``,
  ``within_view``), the one switch every InfoNCE-type loss passes down.
"""

from orbitcl.losses.kernels.anchors import (
    Opening,
    anchor_rows,
    dense_opening,
    gram_rows,
    info_nce,
    split_positive_,
    tolerance,
    unit_anchors,
)
from orbitcl.losses.kernels.blocked import (
    BACKENDS,
    BlockedInfoNCE,
    check_backend,
    default_backend,
)
from orbitcl.losses.kernels.negatives import (
    NEGATIVES,
    candidates,
    check_negatives,
    negative_cols,
    negative_mask,
)
from orbitcl.losses.kernels.rows import Hyper
from orbitcl.losses.kernels.targets import ClassTargets, LogitTargets
from orbitcl.losses.kernels.tension import clamped, raw_tension, tension_rows

__all__ = [
    "BACKENDS",
    "BlockedInfoNCE",
    "ClassTargets",
    "LogitTargets",
    "NEGATIVES",
    "Hyper",
    "Opening",
    "anchor_rows",
    "dense_opening",
    "candidates",
    "check_backend",
    "check_negatives",
    "clamped",
    "default_backend",
    "gram_rows",
    "info_nce",
    "negative_cols",
    "negative_mask",
    "raw_tension",
    "tension_rows",
    "tolerance",
    "split_positive_",
    "unit_anchors",
]

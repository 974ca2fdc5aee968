"""Collapse of a representation, as the SimSiam paper measures it (Chen and He 2021, Fig. 2): the
standard deviation, over images, of each dimension of the l2-normalised embeddings, averaged over
the dimensions.

For unit vectors the per-dimension variances sum to the total variance ``1 - ||mu||^2`` (``mu``
the mean embedding), so by Jensen ``collapse_std <= sqrt((1 - ||mu||^2) / d)``:

- embeddings spread over the sphere (e.g. normalised isotropic Gaussians, ``mu ~ 0``) give
  ``1/sqrt(d)``, each coordinate having variance exactly ``1/d``;
- embeddings spread evenly over ``r`` of the ``d`` coordinate axes give ``sqrt(r) / d``, i.e.
  ``sqrt(r/d)`` of the uncollapsed value;
- collapsed embeddings (all the same vector) give 0.

A validation-time diagnostic, not a hot path: float64 on the CPU.
"""

import math

from torch import Tensor

from orbitcl.checks.numbers import require_in


def collapse_std(z: Tensor) -> float:
    """The mean over the d dimensions of the standard deviation over the M rows of
    ``z / ||z||`` for embeddings z (M >= 2, d); rows of norm 0 stay 0 (as in ``F.normalize``).
    The sample standard deviation (M - 1 in the denominator), as ``torch.std``."""
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"z of shape {tuple(z.shape)} is invalid: need (M >= 2, d)")
    z = z.detach().double().cpu()
    unit = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (M, d)
    return float(unit.std(dim=0).mean())


def collapse_threshold(fraction: float, d: int) -> float:
    """``fraction / sqrt(d)``: the level below which ``collapse_std`` names a run collapsing, a
    ``fraction`` in (0, 1] of the uncollapsed ``1/sqrt(d)``."""
    require_in("threshold_fraction", fraction, 0, 1, "(]")
    return fraction / math.sqrt(d)

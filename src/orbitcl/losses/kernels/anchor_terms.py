"""The per-anchor terms of ORL's tension, O(Nd), and their hand-written backward.

Everything else the tension needs comes from the Gram rows ``G = z_rows z^T`` (docs/orl.md,
"Cost"). These terms come from the vectors, not from diagonals of G: a diagonal's backward costs
a (2n, 2N) pass, and ``||z_p(i) - z_i||`` from G (``2 - 2 cos``) would cancel catastrophically
as the views align.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from orbitcl.losses.kernels.anchors import tolerance


class AnchorTerms(NamedTuple):
    to_pos: Tensor  # (2n, d): z_p(i) - z_i
    a: Tensor  # (2n,): (z_p(i) - z_i) . z_i
    pos_dist: Tensor  # (2n,): ||z_p(i) - z_i||, 1 where the views coincide (never 0)
    views_coincide: Tensor  # (2n,) bool: identical views, where T falls back to 1
    s: Tensor  # (2N,): ||z_k||^2 = G[k, k], 1 but for all-zero inputs


def anchor_terms(z_rows: Tensor, z: Tensor) -> AnchorTerms:
    """The terms of the anchors ``z_rows`` (2n, d; row j's positive is row j +- n, see
    ``anchors.anchor_rows``) and of all anchors z (2N, d). Differentiable."""
    n = len(z_rows) // 2
    to_pos = z_rows.roll(n, 0) - z_rows
    sq_pos = to_pos.square().sum(1)
    views_coincide = sq_pos < tolerance(z)
    pos_dist = torch.where(views_coincide, 1.0, sq_pos).sqrt()
    return AnchorTerms(
        to_pos, (to_pos * z_rows).sum(1), pos_dist, views_coincide, z.square().sum(1)
    )


def anchor_terms_backward(
    terms: AnchorTerms,
    z_rows: Tensor,
    z: Tensor,
    d_a: Tensor,
    d_pos_dist: Tensor,
    d_s_rows: Tensor,
    d_s: Tensor,
) -> tuple[Tensor, Tensor]:
    """``(dL/dz_rows, dL/dz)`` from the gradients with respect to ``a``, ``pos_dist``,
    ``s[cols]`` (the rows' own s: ``||z_rows||^2``) and ``s``."""
    n = len(z_rows) // 2
    # pos_dist is constant where the views coincide.
    d_pos_dist = torch.where(terms.views_coincide, 0.0, d_pos_dist / terms.pos_dist)
    d_to_pos = d_a[:, None] * z_rows + d_pos_dist[:, None] * terms.to_pos
    d_rows = d_a[:, None] * terms.to_pos + 2 * d_s_rows[:, None] * z_rows
    d_rows += d_to_pos.roll(n, 0) - d_to_pos  # to_pos = z_rows.roll(n, 0) - z_rows
    return d_rows, 2 * d_s[:, None] * z

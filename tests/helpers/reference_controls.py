"""Naive float64 references for ORL's controls (docs/orl.md "Known confound").

One anchor at a time from the formulas, on top of `reference_losses` (ORL's naive tension and
per-anchor loss); independent of `orbitcl.losses` on purpose. Small N, non-degenerate inputs.
"""

import torch
from torch import Tensor

from helpers.reference_losses import (
    candidates_of,
    naive_anchors,
    naive_scaled_info_nce,
    naive_tension,
    positive_of,
)


def _negatives(i: int, n: int, negatives: str = "all") -> list[int]:
    return [k for k in candidates_of(i, n, negatives) if k != positive_of(i, n)]


def _own_anchors(n: int, images: slice | None) -> list[int]:
    own = list(range(n)[images or slice(None)])
    return own + [i + n for i in own]


def naive_mean_tension_scale(
    z_a: Tensor,
    z_b: Tensor,
    t_min: float = 1e-6,
    images: slice | None = None,
    negatives: str = "all",
) -> Tensor:
    """c: the mean of T over the `negatives` of the anchors of `images` (default: all, k != i,
    p(i)), detached."""
    t = naive_tension(z_a, z_b, t_min).detach()
    n = len(z_a)
    return torch.stack(
        [t[i, k] for i in _own_anchors(n, images) for k in _negatives(i, n, negatives)]
    ).mean()


def naive_orl_mean_tension(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t_min: float = 1e-6,
    images: slice | None = None,
    mean_images: slice | None = None,
    negatives: str = "all",
) -> Tensor:
    """NT-Xent over `negatives` with every negative logit multiplied by c
    (`naive_mean_tension_scale` over the anchors of `mean_images`, default all), the positive's
    by 1; mean over `images`' anchors."""
    z, n = naive_anchors(z_a, z_b)
    c = naive_mean_tension_scale(z_a, z_b, t_min, mean_images, negatives)
    factors = torch.full((2 * n, 2 * n), float(c), dtype=z.dtype)
    for i in range(2 * n):
        factors[i, positive_of(i, n)] = 1.0
    return naive_scaled_info_nce(z, n, temperature, factors, images, negatives)


def naive_orl_given_tension(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t: Tensor,
    images: slice | None = None,
    negatives: str = "all",
) -> Tensor:
    """ORL's formula, `-sim(i, p(i)) / tau + logsumexp_k sim(i, k) T[i, k] / tau` over the
    positive and the `negatives`, with a given T (2N, 2N), averaged over the anchors of
    `images`."""
    z, n = naive_anchors(z_a, z_b)
    return naive_scaled_info_nce(z, n, temperature, t, images, negatives)


def permuted_tension(t: Tensor, source: dict[tuple[int, int], int]) -> Tensor:
    """T' with T'[i, k] = T[i, source[i, k]] where given, else T[i, k]."""
    rows = []
    for i in range(len(t)):
        rows.append(torch.stack([t[i, source.get((i, k), k)] for k in range(t.shape[1])]))
    return torch.stack(rows)

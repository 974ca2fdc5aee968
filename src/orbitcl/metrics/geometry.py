"""The geometry ORL claims to change, as pure functions of embeddings (``docs/orl.md``).

An *orbit* is the set of embeddings of K augmented views of one image. Orbit tensors are
``(A, K, d)``: A images (anchors), K views each, d features. Every function normalises its inputs
to unit length first, so raw encoder or projector outputs can be passed, and computes in float32
at least. Nothing here needs gradients; callers run it under ``torch.no_grad``.
"""

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor

# One formula for the metric and the loss (Wang and Isola 2020): the loss is its own metric.
from orbitcl.losses.align_uniform import alignment, uniformity


def _unit(x: Tensor) -> Tensor:
    return F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1)


def anchor_view_cosine(anchors: Tensor, views: Tensor) -> Tensor:
    """Cosine between each image's clean embedding and each of its views: (A, d), (A, K, d) ->
    (A, K). The write-up's histogram is of these A*K values, in projector space."""
    return torch.einsum("ad,akd->ak", _unit(anchors), _unit(views))


def orbit_variance(views: Tensor) -> Tensor:
    """``1 - ||m||^2`` per orbit, m the mean of its K unit views: (A, K, d) -> (A,).

    The total variance of the unit views around their mean (trace of the covariance), so 0 for
    identical views and at most 1. Average it for the write-up's "orbit variance".
    """
    mean = _unit(views).mean(dim=1)  # (A, d)
    return 1 - mean.square().sum(dim=1)


def pairwise_cosine(views: Tensor) -> Tensor:
    """Mean cosine over the K(K-1)/2 pairs of distinct views of each orbit: (A, K, d) -> (A,)."""
    u = _unit(views)
    k = u.shape[1]
    if k < 2:
        raise ValueError(f"views has K={k} views per orbit: pairs need K >= 2")
    gram = u @ u.transpose(1, 2)  # (A, K, K)
    off_diagonal = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(dim=1)
    return off_diagonal / (k * (k - 1))


def view_pairs(views: Tensor) -> tuple[Tensor, Tensor]:
    """All pairs of distinct views within each orbit, the positive pairs of a K-view orbit:
    (A, K, d) -> two (A * K(K-1)/2, d) tensors, row r of each from the same image."""
    i, j = zip(*combinations(range(views.shape[1]), 2), strict=True)
    return views[:, list(i)].flatten(0, 1), views[:, list(j)].flatten(0, 1)


def tension_negatives(t: Tensor) -> Tensor:
    """The tension of every negative pair: T (2N, 2N) as ``losses.functional.tension`` returns
    it (rows and columns ``[z_a; z_b]``) -> (2N(2N-2),), without self entries and positives."""
    two_n = len(t)
    n = two_n // 2
    index = torch.arange(two_n, device=t.device)
    negative = index[:, None] != index  # (2N, 2N)
    negative[index, index.roll(n)] = False  # positives p(i)
    return t[negative]


def quantiles(values: Tensor, qs: Tensor | list[float]) -> Tensor:
    """Linear-interpolation quantiles of a 1-D tensor, as ``torch.quantile`` computes them but
    with no limit on the number of values (a 2N = 8192 batch has 67M negatives; torch's is 16M)."""
    # Positions in float64 (float32 cannot address 67M values), on the CPU: no float64 on the
    # device; three numbers travel.
    position = torch.as_tensor(qs, dtype=torch.float64) * (len(values) - 1)
    low, high = position.floor(), position.ceil()
    weight = (position - low).to(values.device, values.dtype)
    low, high = low.long().to(values.device), high.long().to(values.device)
    ordered = values.sort().values
    return ordered[low] + (ordered[high] - ordered[low]) * weight


def tension_summary(values: Tensor, t_min: float = 1e-6) -> dict[str, float]:
    """Summary statistics of the tension of negatives (a 1-D tensor): mean, median, 5th and
    95th percentile, and ``clamped_frac``, the share clamped to ``t_min`` (negatives that ORL
    damps to a logit of ~0, i.e. that point away from the anchor's positive)."""
    p05, median, p95 = quantiles(values, [0.05, 0.5, 0.95]).tolist()
    return {
        "mean": values.mean().item(),
        "median": median,
        "p05": p05,
        "p95": p95,
        # `clamp` stores exactly float32(t_min), so `<=` against the same float32 is exact.
        "clamped_frac": (values <= t_min).float().mean().item(),
    }


def orbit_metrics(anchors: Tensor, views: Tensor) -> dict[str, float]:
    """Every orbit metric of one embedding space: anchors (A, d), views (A, K, d) -> means over
    the A orbits of anchor-view cosine, orbit variance and pairwise view cosine; alignment over
    the views' positive pairs; uniformity over the anchors (one embedding per image, the data
    distribution Wang & Isola measure)."""
    return {
        "anchor_view_cos": anchor_view_cosine(anchors, views).mean().item(),
        "variance": orbit_variance(views).mean().item(),
        "pairwise_cos": pairwise_cosine(views).mean().item(),
        "alignment": alignment(*view_pairs(views)).item(),
        "uniformity": uniformity(anchors).item(),
    }

"""Naive float64 references for ORL's relatives: the debiased and hard-negative contrastive
losses, the semi-hard triplet loss and the margin contrastive loss.

One anchor at a time, straight from the papers' formulas (for the debiased and hard-negative
losses, in the form of the authors' code: exponentials, `clamp`, `-log(pos / (pos + Ng))`), with
explicit difference vectors; independent of `orbitcl.losses` on purpose. Small N, non-degenerate
inputs. Anchors are the 2N views; negatives of anchor i are the 2N - 2 views k != i, p(i).
"""

import math

import torch
from torch import Tensor

from helpers.reference_losses import naive_anchors, positive_of


def _negatives(i: int, n: int) -> list[int]:
    return [k for k in range(2 * n) if k not in (i, positive_of(i, n))]


def _own_anchors(n: int, images: slice | None) -> list[int]:
    own = list(range(n)[images or slice(None)])
    return own + [i + n for i in own]


def naive_hard_negative_terms(
    z_a: Tensor, z_b: Tensor, temperature: float, beta: float, tau_plus: float, images=None
) -> list[tuple[Tensor, Tensor, float]]:
    """Per anchor of `images`: (pos, the debiased estimate of Ng, its floor), Robinson et al.'s
    `estimator='hard'`: pos = e^{sim(i, p)/t}, neg_k = e^{sim(i, k)/t}, imp_k = e^{beta sim/t},
    estimate = (-tau_plus M pos + sum(imp neg) / mean(imp)) / (1 - tau_plus), floor = M e^{-1/t}.
    beta = 0 is Chuang et al.'s debiased estimate, (-tau_plus M pos + sum(neg)) / (1 - tau_plus).
    """
    z, n = naive_anchors(z_a, z_b)
    m = 2 * n - 2
    terms = []
    for i in _own_anchors(n, images):
        pos = torch.exp(z[i] @ z[positive_of(i, n)] / temperature)
        neg = torch.stack([torch.exp(z[i] @ z[k] / temperature) for k in _negatives(i, n)])
        imp = torch.exp(beta * (z[i] @ z[_negatives(i, n)].T) / temperature)
        reweighted = (imp * neg).sum() / imp.mean()
        estimate = (-tau_plus * m * pos + reweighted) / (1 - tau_plus)
        terms.append((pos, estimate, m * math.exp(-1 / temperature)))
    return terms


def naive_hard_negative(
    z_a: Tensor, z_b: Tensor, temperature: float, beta: float, tau_plus: float, images=None
) -> Tensor:
    """mean_i -log(pos / (pos + Ng)), Ng = clamp(estimate, min=floor)."""
    losses = []
    for pos, estimate, floor in naive_hard_negative_terms(
        z_a, z_b, temperature, beta, tau_plus, images
    ):
        ng = torch.clamp(estimate, min=floor)
        losses.append(-torch.log(pos / (pos + ng)))
    return torch.stack(losses).mean()


def naive_debiased(z_a: Tensor, z_b: Tensor, temperature: float, tau_plus: float, images=None):
    """Chuang et al.: Ng = max((-tau_plus M pos + sum_k neg_k) / (1 - tau_plus), M e^{-1/t})."""
    z, n = naive_anchors(z_a, z_b)
    m = 2 * n - 2
    losses = []
    for i in _own_anchors(n, images):
        pos = torch.exp(z[i] @ z[positive_of(i, n)] / temperature)
        neg = torch.stack([torch.exp(z[i] @ z[k] / temperature) for k in _negatives(i, n)])
        ng = (-tau_plus * m * pos + neg.sum()) / (1 - tau_plus)
        ng = torch.clamp(ng, min=m * math.exp(-1 / temperature))
        losses.append(-torch.log(pos / (pos + ng)))
    return torch.stack(losses).mean()


def _sq_dist(z: Tensor, i: int, k: int) -> Tensor:
    return (z[i] - z[k]).square().sum()


def naive_triplet_choices(z_a: Tensor, z_b: Tensor, images=None) -> list[tuple[int, int, bool]]:
    """Per anchor a: (a, its chosen negative, whether it is semi-hard). Semi-hard: the negative
    closest to a among those with d(a, n) > d(a, p); if none, the farthest negative. d: squared
    Euclidean distance of the unit vectors."""
    z, n = naive_anchors(z_a, z_b)
    choices = []
    for a in _own_anchors(n, images):
        d_ap = _sq_dist(z, a, positive_of(a, n))
        dist = {k: float(_sq_dist(z, a, k).detach()) for k in _negatives(a, n)}
        farther = [k for k in dist if dist[k] > d_ap]
        if farther:
            choices.append((a, min(farther, key=dist.get), True))
        else:
            choices.append((a, max(dist, key=dist.get), False))
    return choices


def naive_triplet(z_a: Tensor, z_b: Tensor, margin: float, images=None) -> Tensor:
    """mean_a max(0, d(a, p) - d(a, n) + margin) with n the semi-hard negative."""
    z, n = naive_anchors(z_a, z_b)
    losses = []
    for a, k, _ in naive_triplet_choices(z_a, z_b, images):
        d_ap, d_an = _sq_dist(z, a, positive_of(a, n)), _sq_dist(z, a, k)
        losses.append(torch.clamp(d_ap - d_an + margin, min=0))
    return torch.stack(losses).mean()


def naive_margin(z_a: Tensor, z_b: Tensor, margin: float, images=None) -> Tensor:
    """Hadsell et al.: per anchor, D(i, p)^2 / 2 + mean over negatives of max(0, m - D)^2 / 2,
    D the Euclidean distance of the unit vectors."""
    z, n = naive_anchors(z_a, z_b)
    losses = []
    for i in _own_anchors(n, images):
        similar = (z[i] - z[positive_of(i, n)]).norm() ** 2 / 2
        dissimilar = [
            torch.clamp(margin - (z[i] - z[k]).norm(), min=0) ** 2 / 2 for k in _negatives(i, n)
        ]
        losses.append(similar + torch.stack(dissimilar).mean())
    return torch.stack(losses).mean()

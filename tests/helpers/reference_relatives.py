"""Naive float64 references for the relatives of NT-Xent, written straight from their papers.

One anchor (or pair) at a time, with explicit exp/log and no Gram-matrix tricks; independent of
`orbitcl.losses` on purpose. Only for small N and non-degenerate inputs. Notation: the 2N views
are [z_a; z_b], normalised; view i's positive is p(i) = i +- N.
"""

import itertools

import torch
from torch import Tensor


def _unit(z: Tensor) -> Tensor:
    z = z.double()
    return z / z.norm(dim=1, keepdim=True)


def _views(z_a: Tensor, z_b: Tensor) -> tuple[Tensor, int]:
    return _unit(torch.cat([z_a, z_b])), len(z_a)


def _anchors(n: int, images: slice | None) -> list[int]:
    """The anchors of `images` (default all), both views: i and i + N for each image i."""
    own = list(range(n)[images or slice(None)])
    return own + [i + n for i in own]


def naive_supcon(
    z_a: Tensor, z_b: Tensor, labels: Tensor, temperature: float, images: slice | None = None
) -> Tensor:
    """Khosla et al. 2020, eq. 2 (L_out), averaged over the anchors i:
    -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p/tau) / sum_{a in A(i)} exp(z_i.z_a/tau))."""
    z, n = _views(z_a, z_b)
    y = labels.repeat(2).tolist()
    losses = []
    for i in _anchors(n, images):
        others = [a for a in range(2 * n) if a != i]  # A(i)
        positives = [p for p in others if y[p] == y[i]]  # P(i)
        denominator = sum(torch.exp(z[i] @ z[a] / temperature) for a in others)
        terms = [torch.log(torch.exp(z[i] @ z[p] / temperature) / denominator) for p in positives]
        losses.append(-sum(terms) / len(positives))
    return torch.stack(losses).mean()


def naive_dcl_weights(z_a: Tensor, z_b: Tensor, sigma: float) -> Tensor:
    """Yeh et al. 2022: w_i = 2 - exp(<z_a_i, z_b_i>/sigma) / E_j[exp(<z_a_j, z_b_j>/sigma)],
    detached (as lightly's)."""
    a, b = _unit(z_a.detach()), _unit(z_b.detach())
    n = len(a)
    exps = [torch.exp(a[i] @ b[i] / sigma) for i in range(n)]
    mean = sum(exps) / n
    return torch.stack([2 - e / mean for e in exps])


def naive_dcl(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    sigma: float | None = None,
    images: slice | None = None,
) -> Tensor:
    """Yeh et al. 2022, eq. 6 (DCL; DCLW with `sigma`), averaged over the anchors:
    -w <z_i, z_p(i)>/tau + log sum_{l in views, j != image of i} exp(<z_i, z_j^(l)>/tau)."""
    z, n = _views(z_a, z_b)
    w = naive_dcl_weights(z_a, z_b, sigma) if sigma is not None else torch.ones(n).double()
    losses = []
    for i in _anchors(n, images):
        image = i % n
        p = i + n if i < n else i - n
        negatives = [k for k in range(2 * n) if k % n != image]  # both views of other images
        denominator = sum(torch.exp(z[i] @ z[k] / temperature) for k in negatives)
        losses.append(-w[image] * (z[i] @ z[p]) / temperature + torch.log(denominator))
    return torch.stack(losses).mean()


def naive_alignment(z_a: Tensor, z_b: Tensor, alpha: float, images: slice | None = None):
    """Wang and Isola 2020: E ||f(x) - f(y)||^alpha over the positive pairs (of `images`)."""
    a, b = _unit(z_a), _unit(z_b)
    own = range(len(a))[images or slice(None)]
    return torch.stack([(a[i] - b[i]).norm() ** alpha for i in own]).mean()


def naive_uniformity(x: Tensor, t: float) -> Tensor:
    """Wang and Isola 2020: log E exp(-t ||f(x) - f(y)||^2) over the pairs i < j of one view."""
    x = _unit(x)
    pairs = list(itertools.combinations(range(len(x)), 2))
    return torch.log(sum(torch.exp(-t * (x[i] - x[j]).norm() ** 2) for i, j in pairs) / len(pairs))


def naive_align_uniform(
    z_a: Tensor,
    z_b: Tensor,
    lam: float = 1.0,
    t: float = 2.0,
    alpha: float = 2.0,
    images: slice | None = None,
) -> Tensor:
    """Alignment (of `images`) + lam * mean of the two views' uniformity (whole batch)."""
    uniform = (naive_uniformity(z_a, t) + naive_uniformity(z_b, t)) / 2
    return naive_alignment(z_a, z_b, alpha, images) + lam * uniform


def naive_vrn(z_a: Tensor, z_b: Tensor, target: float, images: slice | None = None) -> Tensor:
    """Lee et al. 2025: mean over the cross-view negative pairs (z_a_i, z_b_j), i != j, i in
    `images`, of (cos(z_a_i, z_b_j) - target)^2."""
    n = len(z_a)
    z_a, z_b = z_a.double(), z_b.double()
    terms = []
    for i in range(n)[images or slice(None)]:
        for j in range(n):
            if j != i:
                cos = z_a[i] @ z_b[j] / (z_a[i].norm() * z_b[j].norm())
                terms.append((cos - target) ** 2)
    return torch.stack(terms).mean()

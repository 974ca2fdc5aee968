"""Naive float64 references for the losses, written straight from docs/orl.md.

One anchor at a time, with explicit difference vectors and no Gram-matrix tricks; independent of
`orbitcl.losses.functional` on purpose. Only for small N and non-degenerate inputs.
"""

import torch
from torch import Tensor


def naive_anchors(z_a: Tensor, z_b: Tensor) -> tuple[Tensor, int]:
    z = torch.cat([z_a, z_b]).double()
    return z / z.norm(dim=1, keepdim=True), len(z_a)


def positive_of(i: int, n: int) -> int:
    return i + n if i < n else i - n


def naive_tension(z_a: Tensor, z_b: Tensor, t_min: float = 1e-6) -> Tensor:
    """T (2N, 2N); the undefined self entries T[i, i] are 0."""
    z, n = naive_anchors(z_a, z_b)
    rows = []
    for i in range(2 * n):
        delta_pos = z[positive_of(i, n)] - z[i]
        u = delta_pos / delta_pos.norm()
        row = []
        for k in range(2 * n):
            if k == i:
                row.append(z.new_zeros(()))
                continue
            delta = z[k] - z[i]
            row.append((u @ delta / delta.norm()).clamp(t_min, 1.0))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def same_view(i: int, k: int, n: int) -> bool:
    return (i < n) == (k < n)


def candidates_of(i: int, n: int, negatives: str = "all") -> list[int]:
    """The positive and the negatives of anchor i, ascending (docs/geometry.md): all others
    (SimCLR); the other view's images (InfoNCE/CLIP); its own view's others and its positive
    (DHEL)."""
    p = positive_of(i, n)
    if negatives == "all":
        return [k for k in range(2 * n) if k != i]
    if negatives == "cross_view":
        return [k for k in range(2 * n) if not same_view(i, k, n)]
    assert negatives == "within_view"
    return [k for k in range(2 * n) if (same_view(i, k, n) and k != i) or k == p]


def naive_scaled_info_nce(
    z: Tensor,
    n: int,
    temperature: float,
    t: Tensor | None,
    images: slice | None,
    negatives: str = "all",
) -> Tensor:
    """Mean over the anchors of `images` (both views; default all) of the per-anchor loss."""
    own = list(range(n)[images or slice(None)])
    losses = []
    for i in own + [i + n for i in own]:
        p = positive_of(i, n)
        negatives_and_positive = candidates_of(i, n, negatives)
        logits = torch.stack([z[i] @ z[k] for k in negatives_and_positive]) / temperature
        if t is not None:
            logits = logits * t[i, negatives_and_positive]
        losses.append(-(z[i] @ z[p]) / temperature + torch.logsumexp(logits, 0))
    return torch.stack(losses).mean()


def naive_ntxent(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    images: slice | None = None,
    negatives: str = "all",
) -> Tensor:
    z, n = naive_anchors(z_a, z_b)
    return naive_scaled_info_nce(z, n, temperature, None, images, negatives)


def naive_orl(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t_min: float = 1e-6,
    detach_tension: bool = False,
    images: slice | None = None,
    negatives: str = "all",
) -> Tensor:
    z, n = naive_anchors(z_a, z_b)
    t = naive_tension(z_a, z_b, t_min)
    t = t.detach() if detach_tension else t
    return naive_scaled_info_nce(z, n, temperature, t, images, negatives)

"""Similarities of positives and negatives (Lee et al. 2025; ``docs/geometry.md``, "Similarities
of positives and negatives"), from blocks of Gram rows: no M x M matrix is kept.

For M images with two unit views ``u_i``, ``v_i``: positives ``u_i . v_i``; cross-view negatives
``u_i . v_j`` (i != j, M (M - 1) ordered pairs); within-view negatives ``u_i . u_j`` and
``v_i . v_j`` (i != j, 2 M (M - 1) ordered pairs). Means and population variances (divided by
the count), accumulated as sums (float64) and sums of squares (in the inputs' dtype, float32 at
least: a variance of ~0.01 from squares of cosines loses ~1e-6 of it to float32 rounding).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.losses.kernels.precision import ieee_fp32

KINDS = ("pos", "neg_cross", "neg_within")


@dataclass
class Similarities:
    """Counts, sums and sums of squares of each kind of pair, and histogram counts on ``edges``."""

    edges: Tensor  # (bins + 1,) over [-1, 1]
    count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    total: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    squares: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    hist: dict[str, Tensor] = field(default_factory=dict)

    def add(self, kind: str, values: Tensor, minus: Tensor | None = None) -> None:
        """Adds the pairs ``values`` (any shape), less those of ``minus`` (a subset of them:
        cheaper than selecting from a block of Gram rows all but its diagonal)."""
        for sign, x in ((1, values), (-1, minus)):
            if x is None:
                continue
            # histc drops values outside its range: a cosine rounded to 1 + 1e-7 would go missing.
            x = x.clamp(-1, 1).flatten()
            self.count[kind] += sign * x.numel()
            self.total[kind] += sign * float(x.sum(dtype=torch.float64))
            self.squares[kind] += sign * float(torch.dot(x, x))
            counts = torch.histc(x, len(self.edges) - 1, -1.0, 1.0).cpu().double()
            self.hist[kind] = self.hist.get(kind, 0) + sign * counts

    def statistics(self) -> dict[str, float]:
        """``pos_mean``, ``pos_var``, ``neg_cross_mean``, ... (population variances)."""
        out = {}
        for kind in KINDS:
            mean = self.total[kind] / self.count[kind]
            out[f"{kind}_mean"] = mean
            out[f"{kind}_var"] = max(self.squares[kind] / self.count[kind] - mean * mean, 0.0)
        return out


def similarities(u: Tensor, v: Tensor, block: int = 1024, bins: int = 100) -> Similarities:
    """The similarities of the M pairs of views ``u``, ``v`` (M, d), normalised here, over
    blocks of ``block`` rows (``u[rows] @ v.T``, ``u[rows] @ u.T``, ``v[rows] @ v.T``), in
    float32 at least; histograms of ``bins`` bins over [-1, 1]."""
    if u.ndim != 2 or u.shape != v.shape or len(u) < 2:
        raise ValueError(f"u and v must both have shape (M, d) with M >= 2, got {tuple(u.shape)}")
    dtype = torch.promote_types(u.dtype, torch.float32)  # float64 stays float64 (tests)
    u, v = F.normalize(u.to(dtype), dim=1), F.normalize(v.to(dtype), dim=1)
    out = Similarities(torch.linspace(-1, 1, bins + 1))
    out.add("pos", (u * v).sum(1))
    # IEEE fp32 whatever the global TF32 setting: the statistics resolve cosines near 1.
    with torch.autocast(u.device.type, enabled=False), ieee_fp32():
        for lo in range(0, len(u), block):
            hi = min(lo + block, len(u))
            for kind, x, y in (("neg_cross", u, v), ("neg_within", u, u), ("neg_within", v, v)):
                gram = x[lo:hi] @ y.T  # (b, M)
                diagonal = gram.diagonal(lo)  # the pairs i = j: positives, or self (1)
                out.add(kind, gram, minus=diagonal)
    return out


def optimum_negative(n: int) -> float:
    """``-1/(n-1)``: every negative's similarity at the full-batch optimum of n images."""
    return -1.0 / (n - 1)


def bound_pos_mean(neg_cross_mean: float, m: int) -> float:
    """Thm 5.2: ``E[s_pos] <= 1 + E[s_neg] + 1/(m-1)``, cross-view negatives, over a set of m
    images (an identity of any m pairs of unit vectors: ``(sum u) . (sum v)`` is at least
    ``-||sum (u - v)||^2 / 4``)."""
    return 1.0 + neg_cross_mean + 1.0 / (m - 1)


def negative_variance_range(n: int, m: int) -> tuple[float, float]:
    """The range of ``Var[s_neg]`` with fixed batches of size m out of n images (``d >= m-1``):
    ``[(n-m)/((m-1)(n-1)^2), n(n-m)/((m-1)(n-1)^2)]``."""
    low = (n - m) / ((m - 1) * (n - 1) ** 2)
    return low, n * low


def references(stats: dict[str, float], m: int, n: int, batch_size: int) -> dict[str, float]:
    """The references beside ``stats`` (``Similarities.statistics`` of M = ``m`` images), by
    their metric suffixes: ``bound_neg_optimum`` (``-1/(n-1)``, n the training-set size),
    ``bound_pos_mean`` (Thm 5.2 over these m images, so that it holds exactly) and
    ``bound_neg_var_low`` / ``_high`` (fixed batches of ``batch_size`` out of n)."""
    low, high = negative_variance_range(n, batch_size)
    return {
        "bound_neg_optimum": optimum_negative(n),
        "bound_pos_mean": bound_pos_mean(stats["neg_cross_mean"], m),
        "bound_neg_var_low": low,
        "bound_neg_var_high": high,
    }

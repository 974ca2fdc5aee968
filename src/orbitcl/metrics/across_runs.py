"""Comparing two runs' representations of the same images, blind to what leaves the loss
unchanged (docs/representation.md, "Across runs").

Contrastive losses are invariant to rotations of the embedding space, so two runs cannot be
compared coordinate by coordinate. Both measures here take x (M, d1) and y (M, d2), the two runs'
embeddings of the same M images in the same order, and compute in float64 on the CPU:

- ``linear_cka`` (Kornblith et al. 2019): ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the
  linear kernels ``K = x x^T``, ``L = y y^T``. With the biased HSIC (centred Gram matrices) this
  is ``||y_c^T x_c||_F^2 / (||x_c^T x_c||_F ||y_c^T y_c||_F)`` on the centred x_c, y_c, computed
  from d x d products; ``unbiased=True`` uses Song et al. 2012's unbiased HSIC estimator on the
  M x M Gram matrices (Nguyen et al. 2021 recommend it when M is not much larger than d). In
  [0, 1] (biased); invariant to orthogonal transforms, isotropic scaling and translation of
  either input.
- ``procrustes_distance``: ``min_Q ||x_n - y_n Q||_F`` over orthogonal Q, on x and y centred
  and scaled to unit Frobenius norm (zero-padded to a common width), which is
  ``sqrt(2 - 2 ||x_n^T y_n||_*)`` (nuclear norm; Ding et al. 2021, Williams et al. 2021): 0
  exactly when y is a rotated, scaled, translated x; at most sqrt(2).
"""

from collections.abc import Sequence

import torch
from torch import Tensor


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """x, y centred, in float64 on the CPU, after checking they embed the same images."""
    for name, z in (("x", x), ("y", y)):
        if z.ndim != 2 or len(z) < 2:
            raise ValueError(f"{name} of shape {tuple(z.shape)} is invalid: need (M >= 2, d)")
    if len(x) != len(y):
        raise ValueError(
            f"x has {len(x)} rows and y {len(y)}: both must embed the same images, in one order"
        )
    x, y = x.detach().double().cpu(), y.detach().double().cpu()
    return x - x.mean(0), y - y.mean(0)


def linear_cka(x: Tensor, y: Tensor, unbiased: bool = False) -> float:
    """Linear CKA between x (M, d1) and y (M, d2) (module docstring); ``unbiased`` needs M >= 4."""
    x, y = _pair(x, y)
    if unbiased:
        k, l_ = x @ x.T, y @ y.T  # (M, M)
        hsic = _unbiased_hsic(k, l_)
        return float(hsic / (_unbiased_hsic(k, k) * _unbiased_hsic(l_, l_)).sqrt())
    cross = (y.T @ x).square().sum()  # ||y^T x||_F^2 = tr(K_c L_c)
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def linear_cka_matrix(xs: Sequence[Tensor]) -> list[list[float]]:
    """The biased ``linear_cka`` between every two of n runs' embeddings xs[i] (M, d_i) of the
    same M images: an n x n symmetric matrix. Each input is centred and its ``||x_c^T x_c||_F``
    computed once, and each pair's ``||y_c^T x_c||_F^2`` once, so a study of n settings costs
    n(n - 1)/2 d x d products rather than n^2 calls."""
    if not xs:
        return []
    centred = [_pair(x, xs[0])[0] for x in xs]  # each checked against the first for M
    norms = [(x.T @ x).norm() for x in centred]
    matrix = [[1.0] * len(xs) for _ in xs]
    for i, x in enumerate(centred):
        matrix[i][i] = float((x.T @ x).square().sum() / norms[i] ** 2)
        for j in range(i + 1, len(xs)):
            y = centred[j]
            matrix[i][j] = matrix[j][i] = float((y.T @ x).square().sum() / (norms[i] * norms[j]))
    return matrix


def _unbiased_hsic(k: Tensor, l_: Tensor) -> Tensor:
    """Song et al. 2012's unbiased HSIC of two (M, M) kernel matrices (diagonals ignored):
    ``[tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((M-1)(M-2)) - 2/(M-2) 1^T K~ L~ 1] / (M(M-3))``."""
    m = len(k)
    if m < 4:
        raise ValueError(f"M={m} rows is invalid for the unbiased HSIC: need M >= 4")
    k, l_ = k.clone().fill_diagonal_(0), l_.clone().fill_diagonal_(0)
    trace = (k * l_).sum()  # tr(K~ L~), both symmetric
    sums = k.sum() * l_.sum() / ((m - 1) * (m - 2))
    cross = 2 * (k.sum(0) @ l_.sum(1)) / (m - 2)  # 1^T K~ L~ 1
    return (trace + sums - cross) / (m * (m - 3))


def procrustes_distance(x: Tensor, y: Tensor) -> float:
    """The orthogonal Procrustes distance between x (M, d1) and y (M, d2) (module docstring)."""
    x, y = _pair(x, y)
    x, y = x / x.norm(), y / y.norm()
    nuclear = torch.linalg.svdvals(x.T @ y).sum()  # ||x^T y||_*, at most 1
    return float((2 - 2 * nuclear).clamp_min(0).sqrt())

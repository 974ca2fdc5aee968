"""Naive float64 references for the spectrum metrics (orbitcl.metrics.spectrum), written from
docs/representation.md's formulas the direct way: the (d, d) covariance and scatter matrices,
Sigma_w^-1/2 by a full eigendecomposition, and the (d, d) LDA matrix's eigenvalues. This was
orbitcl's implementation before the Cholesky and Gram-matrix shortcuts; slow on wide features
(seconds at d = 2048), so only for tests."""

import math

import torch
from torch import Tensor


def smooth_rank(values: Tensor, eps: float) -> float:
    """``exp(-sum_k p_k log p_k)``, ``p_k = max(v_k, 0) / sum_j max(v_j, 0) + eps``."""
    v = values.double().clamp_min(0)
    p = v / v.sum() + eps
    return math.exp(-(p * p.log()).sum().item())


def singular_values(z: Tensor) -> Tensor:
    """sigma (min(M, d),), descending, of the centred z (M, d), by the full SVD: U diag(sigma) V^T
    (not the covariance's eigenvalues, whose square roots turn the rounding of the zero ones
    into noise of sqrt(float64 eps) sigma_1)."""
    x = z.double() - z.double().mean(0)
    return torch.linalg.svd(x, full_matrices=False).S


def lidar_eigenvalues(views: Tensor, delta: float = 1e-4) -> Tensor:
    """The d eigenvalues (d,), ascending, of ``Sigma_w^-1/2 Sigma_b Sigma_w^-1/2`` for views
    (A, K, d), one anchor's views at a time."""
    e = views.double()
    a, k, d = e.shape
    mu = e.mean(1)  # (A, d)
    grand = mu.mean(0)
    sigma_b = sum(torch.outer(mu[i] - grand, mu[i] - grand) for i in range(a)) / (a - 1)
    sigma_w = sum((e[i] - mu[i]).T @ (e[i] - mu[i]) for i in range(a)) / (a * (k - 1))
    sigma_w = sigma_w + delta * torch.eye(d, dtype=torch.float64)
    w_values, w_vectors = torch.linalg.eigh(sigma_w)
    inv_sqrt = (w_vectors * w_values.rsqrt()) @ w_vectors.T  # symmetric Sigma_w^-1/2
    lda = inv_sqrt @ sigma_b @ inv_sqrt
    return torch.linalg.eigvalsh((lda + lda.T) / 2)


def lidar(views: Tensor, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """LiDAR (Thilak et al. 2024): the smooth rank of the LDA matrix's d eigenvalues."""
    return smooth_rank(lidar_eigenvalues(views, delta), eps)

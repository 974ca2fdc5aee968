"""Naive float64 references of the weighted InfoNCE losses, written from geometry.md with loops:
``L_W = (1/2N) sum_i sum_{j != i} W_ij (-log p_ij)`` and each weighting's W."""

import math

import torch
from torch import Tensor


def naive_weighted_info_nce(
    z_a: Tensor, z_b: Tensor, weights: Tensor, temperature: float, images: slice | None = None
) -> Tensor:
    z = torch.nn.functional.normalize(torch.cat([z_a, z_b]), dim=1)
    n = len(z_a)
    own = list(range(n)[images or slice(None)])
    terms = []
    for i in own + [i + n for i in own]:
        others = [k for k in range(2 * n) if k != i]
        log_norm = torch.logsumexp(torch.stack([z[i] @ z[k] / temperature for k in others]), 0)
        terms.append(sum(weights[i, j] * (log_norm - z[i] @ z[j] / temperature) for j in others))
    return torch.stack(terms).mean()


def _rows_normalised(w: list[list[float]]) -> Tensor:
    return torch.tensor([[x / sum(row) for x in row] for row in w], dtype=torch.float64)


def naive_soft_supcon_weights(labels: Tensor, epsilon: float) -> Tensor:
    y = labels.repeat(2).tolist()
    m = len(y)
    return _rows_normalised(
        [
            [0.0 if j == i else (1.0 if y[j] == y[i] else epsilon) for j in range(m)]
            for i in range(m)
        ]
    )


def naive_y_aware_weights(labels: Tensor, sigma: float) -> Tensor:
    y = labels.reshape(len(labels), -1).repeat(2, 1).tolist()
    m = len(y)

    def kernel(i, j):
        return math.exp(
            -sum((a - b) ** 2 for a, b in zip(y[i], y[j], strict=True)) / (2 * sigma**2)
        )

    return _rows_normalised([[0.0 if j == i else kernel(i, j) for j in range(m)] for i in range(m)])


def naive_xclr_weights(labels: Tensor, similarity: Tensor, target_temperature: float) -> Tensor:
    y = labels.repeat(2).tolist()
    m = len(y)
    exp = [
        [
            0.0 if j == i else math.exp(float(similarity[y[i], y[j]]) / target_temperature)
            for j in range(m)
        ]
        for i in range(m)
    ]
    return _rows_normalised(exp)

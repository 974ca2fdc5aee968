"""Naive float64 reference for MoCo's loss with and without ORL's tension, written straight from
the formula: one query and one queued key at a time, explicit difference vectors, no Gram-matrix
tricks; independent of `orbitcl.losses.moco` on purpose. Only for small inputs without
degenerate directions.
"""

import torch
from torch import Tensor


def _unit(x: Tensor) -> Tensor:
    return x.double() / x.double().norm()


def naive_queue_tension(q: Tensor, k: Tensor, queue: Tensor, t_min: float = 1e-6) -> Tensor:
    """T (N, K): T[i, j] = u_i . (n_j - q_i) / ||n_j - q_i||, u_i = (k_i - q_i) / ||k_i - q_i||,
    clamped to [t_min, 1]; keys and queue detached."""
    rows = []
    for i in range(len(q)):
        q_i, k_i = _unit(q[i]), _unit(k[i].detach())
        u = (k_i - q_i) / (k_i - q_i).norm()
        row = []
        for n_j in queue.detach():
            delta = _unit(n_j) - q_i
            row.append((u @ delta / delta.norm()).clamp(t_min, 1.0))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def naive_moco(
    q: Tensor, k: Tensor, queue: Tensor, temperature: float, tension: bool, t_min: float = 1e-6
) -> Tensor:
    """mean_i [-q_i . k_i / tau + log(exp(q_i . k_i / tau) + sum_j exp(q_i . n_j T_ij / tau))]."""
    t = naive_queue_tension(q, k, queue, t_min) if tension else None
    losses = []
    for i in range(len(q)):
        q_i, k_i = _unit(q[i]), _unit(k[i].detach())
        positive = q_i @ k_i / temperature
        logits = [positive]
        for j, n_j in enumerate(queue.detach()):
            logit = q_i @ _unit(n_j) / temperature
            logits.append(logit * t[i, j] if tension else logit)
        losses.append(-positive + torch.logsumexp(torch.stack(logits), 0))
    return torch.stack(losses).mean()

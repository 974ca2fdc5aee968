"""MoCo: InfoNCE of queries against a queue of keys from a momentum encoder, optionally with ORL's
tension on the queued negatives.

He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020 (MoCo), with the settings of Chen, Fan, Girshick and He, "Improved Baselines
with Momentum Contrastive Learning", 2020 (MoCo v2: MLP projector, temperature 0.2). The keys
come from EMA copies of the encoder and projector (``orbitcl.training.momentum.MomentumEncoder``),
which ``orbitcl.training.objectives`` builds for a loss that declares it needs momentum keys.

Conventions: queries ``q`` (N, d) are projector outputs, keys ``k`` (N, d) the momentum
encoder's embeddings of the other view of the same images (row n of each from image n), the queue
(K, d) holds the keys of earlier steps. All three are normalised here; keys and queue carry no
gradient. As in MoCo, the negatives are the queued keys only: the keys of the current batch join
the queue after the step.
"""

from collections.abc import Sequence
from functools import reduce
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.checks.numbers import require_in, require_int
from orbitcl.losses import kernels
from orbitcl.losses.base import Loss, Needs, check_momentum_schedule
from orbitcl.losses.functional import check_t_min, check_temperature
from orbitcl.losses.kernels.precision import gram_ieee
from orbitcl.parallel import collectives


def _unit(*xs: Tensor) -> list[Tensor]:
    """The rows of each tensor normalised, in their common dtype (float32 at least): in fp16/bf16
    the tension of near-aligned pairs would be noise (docs/orl.md)."""
    dtype = reduce(torch.promote_types, [x.dtype for x in xs], torch.float32)
    return [F.normalize(x.to(dtype), dim=1) for x in xs]


def _matmul_t(a: Tensor, b: Tensor) -> Tensor:
    # Autocast would run the matmul in half precision and undo the upcast of _unit; TF32 would
    # make the tension built from these products noise (kernels.precision).
    with torch.autocast(a.device.type, enabled=False):
        return gram_ieee(a, b)


def _check_shapes(q: Tensor, k: Tensor, queue: Tensor) -> None:
    if q.ndim != 2 or q.shape != k.shape or queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(
            "q and k must have shape (N, d) and queue (K, d), got "
            f"{tuple(q.shape)}, {tuple(k.shape)} and {tuple(queue.shape)}"
        )
    if len(q) == 0 or len(queue) == 0:
        raise ValueError(
            f"MoCo needs N >= 1 queries and K >= 1 queued keys, got {len(q)}, {len(queue)}"
        )


def _tension(q: Tensor, k: Tensor, queue: Tensor, gram: Tensor, t_min: float) -> Tensor:
    """T (N, K) from unit queries q, keys k (N, d), queue (K, d) and ``gram = q queue^T``.

    ORL's tension (``orbitcl.losses.kernels.tension``) with the query as anchor, its key as
    positive and the queued key n_j as negative: ``T[i, j] = u_i . (n_j - q_i) / ||n_j - q_i||``,
    ``u_i = (k_i - q_i) / ||k_i - q_i||``, clamped to ``[t_min, 1]``. O(NK) elementwise work and
    one (N, d) x (d, K) matmul beyond the logits'; never an (N, K, d) tensor. Fallbacks, as ORL's:
    where a direction is undefined T is 1 (InfoNCE's logit), for every negative of a query whose
    key coincides with it (no u_i) and for a queued key equal to the query.
    """
    to_pos = k - q  # (N, d): computed directly; from 2 - 2 cos it would cancel
    sq_pos = to_pos.square().sum(1)  # (N,)
    key_coincides = sq_pos < kernels.tolerance(q)  # (N,)
    pos_dist = torch.where(key_coincides, 1.0, sq_pos).sqrt()  # (N,), never sqrt(0)
    x, _, noise = kernels.raw_tension(
        gram,
        _matmul_t(k, queue),  # (N, K): k_i . n_j, the Gram row of the positive
        (to_pos * q).sum(1),
        pos_dist,
        q.square().sum(1),
        queue.square().sum(1),
        kernels.tolerance(q),
    )
    return kernels.clamped(x, noise | key_coincides[:, None], t_min)


def queue_tension(q: Tensor, k: Tensor, queue: Tensor, t_min: float = 1e-6) -> Tensor:
    """ORL's tension (N, K) of each query's queued negatives; see ``moco``. float32 at least."""
    check_t_min(t_min)
    _check_shapes(q, k, queue)
    q, k, queue = _unit(q, k.detach(), queue.detach())
    return _tension(q, k, queue, _matmul_t(q, queue), t_min)


def moco(
    q: Tensor,
    k: Tensor,
    queue: Tensor,
    temperature: float,
    tension: bool = False,
    t_min: float = 1e-6,
) -> Tensor:
    """MoCo's InfoNCE, the mean over the N queries of

    ``-q_i . k_i / tau + log(exp(q_i . k_i / tau) + sum_j exp(q_i . n_j T[i, j] / tau))``

    on unit q, k and queued keys n_j (rows of ``queue``), i.e. cross-entropy over the logits
    ``[l_pos, l_neg]`` with target 0, as in MoCo's Algorithm 1. ``T = 1`` without ``tension``;
    with it, ORL's tension of each queued negative (``queue_tension``), gradients flowing through
    it into q. Keys and queue are detached. The queue is read into a normalised copy, so the
    caller may enqueue into it in place before the backward pass.
    """
    check_temperature(temperature)
    check_t_min(t_min)
    _check_shapes(q, k, queue)
    q, k, queue = _unit(q, k.detach(), queue.detach())
    gram = _matmul_t(q, queue)  # (N, K): q_i . n_j
    negatives = gram * _tension(q, k, queue, gram, t_min) if tension else gram
    positive = (q * k).sum(1, keepdim=True)  # (N, 1): q_i . k_i
    logits = torch.cat([positive, negatives], dim=1).div_(temperature)  # (N, 1 + K)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class MoCoLoss(Loss):
    """MoCo (He et al., CVPR 2020; v2 settings): InfoNCE against a FIFO queue of momentum keys.

    ``forward(z_a, z_b, k_a, k_b)`` takes the projector outputs of two views (N, d) and the
    momentum encoder's embeddings of the same views. ``symmetric`` (the default, as in MoCo v3
    and common practice) averages ``moco(z_a, k_b)`` and ``moco(z_b, k_a)``: both views serve as
    queries. Otherwise it is MoCo v2's one-sided ``moco(z_a, k_b)``. The negatives are the K
    queued keys only (MoCo's choice): ``tension`` scales each of their logits by ORL's tension
    T[i, j] (``queue_tension``; fallbacks as in docs/orl.md), clamped to ``[t_min, 1]``.

    The queue is a buffer of K unit keys (K, d) with a pointer, so checkpoints carry it. It starts
    as random unit vectors (as in MoCo), drawn from a fixed generator so that building this loss
    does not shift the global random stream (the model's initialisation). ``enqueue`` is called
    once per training step, after the loss has read the queue: it appends every key that served
    as a positive in that step (all views if ``symmetric``, else views 1, ...), overwriting the
    oldest; under DDP with ``gather_distributed`` it first gathers the keys of all ranks in rank
    order, so every rank's queue is the same.

    ``needs.momentum_keys`` asks the training step for the keys: ``orbitcl.training.objectives``
    builds the momentum encoder with this loss's ``momentum``, updates it after every optimiser
    step (at the constant rate ``momentum``, MoCo's; ``momentum_schedule="cosine"`` moves it
    to 1 over training as BYOL does) and calls ``enqueue``.
    The loss itself needs no gathering: each query's term depends on its own q, k and the shared
    queue, so the mean of the ranks' losses is the global batch's.
    """

    paper: ClassVar[str] = (
        "He, Fan, Wu, Xie and Girshick 2020, Momentum Contrast for Unsupervised Visual "
        "Representation Learning (CVPR); Chen, Fan, Girshick and He 2020, Improved Baselines "
        "with Momentum Contrastive Learning"
    )
    formula: ClassVar[str] = "orbitcl.losses.moco.moco"

    needs = Needs(momentum_keys=True, key_queue=True)
    contrasts_negatives: ClassVar[bool] = True  # the queue's keys

    def __init__(
        self,
        dim: int,
        temperature: float = 0.2,
        queue_size: int = 4096,
        momentum: float = 0.99,
        momentum_schedule: str = "constant",
        symmetric: bool = True,
        tension: bool = False,
        t_min: float = 1e-6,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        require_int("dim", dim, 1)
        require_int("queue_size", queue_size, 1)
        require_in("momentum", momentum, 0, 1, "[)")
        check_momentum_schedule(momentum_schedule)
        check_temperature(temperature)
        check_t_min(t_min)
        self.temperature = temperature
        self.momentum = momentum
        self.momentum_schedule = momentum_schedule
        self.symmetric = symmetric
        self.tension = tension
        self.t_min = t_min
        noise = torch.randn(queue_size, dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("queue", F.normalize(noise, dim=1))  # (K, d)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))  # next row to write

    def forward(self, z_a: Tensor, z_b: Tensor, k_a: Tensor, k_b: Tensor) -> Tensor:
        """The loss (a scalar) of queries ``z_a``, ``z_b`` and keys ``k_a``, ``k_b``, (N, d)."""
        loss = moco(z_a, k_b, self.queue, self.temperature, self.tension, self.t_min)
        if not self.symmetric:
            return loss
        return (loss + moco(z_b, k_a, self.queue, self.temperature, self.tension, self.t_min)) / 2

    @torch.no_grad()
    def enqueue(self, keys: Sequence[Tensor]) -> None:
        """Appends the step's keys (V views, each (B, d)) that served as positives, FIFO."""
        served = keys if self.symmetric else keys[1:]
        new = F.normalize(torch.cat(list(served)).detach().to(self.queue.dtype), dim=1)  # (M, d)
        if self.gather_distributed:
            new = collectives.gather(new)  # (W M, d), rank order: the same on every rank
        size, count = len(self.queue), len(new)
        kept = new[-size:]  # more keys than the queue holds: only the newest survive
        # On the device, so that no step waits for the pointer to reach the CPU.
        offsets = torch.arange(count - len(kept), count, device=new.device)
        self.queue.index_copy_(0, (self.queue_ptr + offsets) % size, kept)
        self.queue_ptr.add_(count).remainder_(size)

    def extra_repr(self) -> str:
        return (
            f"dim={self.queue.shape[1]}, temperature={self.temperature}, "
            f"queue_size={len(self.queue)}, momentum={self.momentum}, "
            f"momentum_schedule={self.momentum_schedule}, "
            f"symmetric={self.symmetric}, tension={self.tension}, t_min={self.t_min}, "
            f"gather_distributed={self.gather_distributed}"
        )

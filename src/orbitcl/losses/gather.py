"""All-gather with gradients, so that a DDP rank's loss sees the negatives of every rank.

Under DDP each of the W ranks holds n images of the global batch of N = W n. Rank r gathers all
``z_a``, ``z_b`` (ordered by rank: ``z_a_global = cat(z_a of rank 0, ..., z_a of rank W-1)``) and
computes the loss of its own 2n anchors against all 2N columns (``images=`` of
``orbitcl.losses.functional``). The mean of the ranks' losses is then the one-process loss L on
the global batch. Every rank's loss depends on rank r's embeddings, so the gradient of the sum
of the ranks' losses (W L) with respect to them is the sum of every rank's gradient: the
backward all-reduces, and rank r's gradient is W times its rows of the gradient of L. DDP's
averaging of the parameter gradients divides by W, which makes training equal one-process
training on the global batch (with BatchNorm over the global batch, i.e. SyncBatchNorm).
"""

import torch
import torch.distributed as dist
from torch import Tensor


class AllGather(torch.autograd.Function):
    """(n, ...) on each of W ranks -> (W n, ...), the ranks' tensors concatenated in rank order.

    Backward: the gradients of all ranks with respect to the gathered tensor are summed, and each
    rank keeps the slice of its own rows. Every rank must pass the same shape.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(dist.get_rank() * len(x), (dist.get_rank() + 1) * len(x))
        return torch.cat(parts)  # (W n, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # A copy: autograd may hand the same buffer to other consumers, and all_reduce is in place.
        grad = grad.clone(memory_format=torch.contiguous_format)  # (W n, ...)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows]  # (n, ...)


def world_size() -> int:
    """The number of processes of the default process group; 1 when there is none."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_views(z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor, slice | None]:
    """The global ``(z_a, z_b)``, each (W n, d), and this rank's images in them (a slice).

    In one process (no process group, or a group of one) the views come back unchanged with
    ``None``: all images are this process's.
    """
    if world_size() == 1:
        return z_a, z_b, None
    n = len(z_a)
    # One collective for both views: (n, 2d) -> (W n, 2d).
    z = AllGather.apply(torch.cat([z_a, z_b], dim=1))
    z_a_all, z_b_all = z.split(z_a.shape[1], dim=1)  # 2 x (W n, d)
    rank = dist.get_rank()
    return z_a_all, z_b_all, slice(rank * n, (rank + 1) * n)

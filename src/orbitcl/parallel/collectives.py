"""The collectives of orbitcl, in one place: every ``torch.distributed`` call in the package is
one of these.

Each works in one process as well (no process group, or a group of one): a gather returns its
tensor, a sum returns it unchanged. Under DDP each of the W ranks holds n rows; a gather
concatenates the ranks' rows in rank order, (n, ...) -> (W n, ...), and every rank must pass
the same shape.

``gather_with_grad`` keeps the gradient. Every rank's loss then depends on rank r's rows, so
the gradient of the sum of the ranks' losses with respect to them is the sum of every rank's
gradient: the backward all-reduces, and rank r keeps the slice of its own rows. DDP's averaging
of the parameter gradients divides by W, which makes training equal one-process training on the
global batch (``orbitcl.losses.gather``).
"""

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """The number of processes of the default process group; 1 when there is none."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group; 0 when there is none."""
    return dist.get_rank() if world_size() > 1 else 0


def own_rows(n: int) -> slice:
    """This rank's rows of a gathered tensor whose every rank held n rows."""
    return slice(rank() * n, (rank() + 1) * n)


def gather(x: Tensor) -> Tensor:
    """(n, ...) on each rank -> (W n, ...) in rank order, without gradient."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_with_grad(x: Tensor) -> Tensor:
    """(n, ...) on each rank -> (W n, ...) in rank order; the backward sums the ranks' gradients
    and keeps this rank's rows."""
    if world_size() == 1:
        return x
    return AllGather.apply(x)


def sum_over_ranks(x: Tensor) -> Tensor:
    """The sum of ``x`` over the ranks, on every rank; ``x`` itself is left as it is."""
    if world_size() == 1:
        return x
    x = x.clone(memory_format=torch.contiguous_format)  # all_reduce works in place
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


class AllGather(torch.autograd.Function):
    """(n, ...) on each of W ranks -> (W n, ...), the ranks' tensors concatenated in rank order.

    Backward: the gradients of all ranks with respect to the gathered tensor are summed, and each
    rank keeps the slice of its own rows. Every rank must pass the same shape.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rows = own_rows(len(x))
        return gather(x)  # (W n, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # Out of place: autograd may hand the same buffer to other consumers.
        grad = sum_over_ranks(grad)  # (W n, ...)
        return grad[ctx.rows]  # (n, ...)


def any_rank(flag: Tensor) -> Tensor:
    """Whether ``flag`` (a bool tensor, any shape) is true on some rank, elementwise, the same on
    every rank. An all-reduce on the flag's device: no host sync under NCCL, so the ranks agree
    before anything is decided, and none waits alone in a later collective."""
    if world_size() == 1:
        return flag
    agreed = flag.to(torch.int32)
    dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return agreed.bool()

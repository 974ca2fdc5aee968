"""The collectives of orbitcl, in one place: every new ``torch.distributed`` call goes here.
Each works in one process as well (no process group, or a group of one)."""

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """The number of processes of the default process group; 1 when there is none."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def any_rank(flag: Tensor) -> Tensor:
    """Whether ``flag`` (a bool tensor, any shape) is true on some rank, elementwise, the same on
    every rank. An all-reduce on the flag's device: no host sync under NCCL, so the ranks agree
    before anything is decided, and none waits alone in a later collective."""
    if world_size() == 1:
        return flag
    agreed = flag.to(torch.int32)
    dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return agreed.bool()

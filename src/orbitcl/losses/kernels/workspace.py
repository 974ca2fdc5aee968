"""Scratch matrices for the loss kernels, kept from one call to the next on the CPU.

A fresh (2b, 2N) matrix is mapped from the operating system (glibc hands allocations above
32 MiB to mmap) and page-faulted in on first touch: at 2N = 4096 that costs about as much as a
pass over it, for every temporary of every step. The kernels of ``blocked`` instead write their
temporaries into a few named buffers per thread, dtype and device, which grow to the largest
block seen and are then reused. They hold at most a few ``blocked.BLOCK_BYTES`` each. On other
devices (CUDA has its own caching allocator) a buffer is a plain new tensor.

A buffer is valid until the next ``scratch`` call with its name in the same thread: the kernels
use them within one block and never let one escape.
"""

import threading

from torch import Tensor

_local = threading.local()


def scratch(name: str, shape: tuple[int, int], like: Tensor) -> Tensor:
    """An uninitialised contiguous tensor of ``shape``, dtype and device of ``like``."""
    if like.device.type != "cpu":
        return like.new_empty(shape)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (name, like.dtype)
    numel = shape[0] * shape[1]
    flat = buffers.get(key)
    if flat is None or len(flat) < numel:
        flat = buffers[key] = None  # free the old one first
        flat = buffers[key] = like.new_empty(numel)
    return flat[:numel].view(shape)


def release() -> None:
    """Free this thread's buffers (they come back at the next call)."""
    _local.buffers = {}

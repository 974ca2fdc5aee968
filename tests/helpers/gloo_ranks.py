"""Run a function in WORLD gloo processes on the CPU, for the tests of DDP behaviour.

Only torch is imported here: spawned processes import this module and the test module of the
function they run, so importing Lightning here would cost each of them tens of seconds.
"""

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
N, D = 5, 16  # images per rank, embedding dimension


def spawn(fn, tmp_path: Path, *args) -> list:
    """`fn(rank, *args)` in WORLD gloo processes; the list of what each rank returned."""
    mp.spawn(_worker, args=(fn, str(tmp_path), args), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]


def _worker(rank: int, fn, tmp: str, args: tuple) -> None:
    torch.set_num_threads(1)  # 2 processes on a small CPU
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD)
    try:
        torch.save(fn(rank, *args), f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def global_views() -> tuple[torch.Tensor, torch.Tensor]:
    """The concatenated batch (WORLD N, D) x 2, float64: rank r holds rows r N .. (r + 1) N."""
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(WORLD * N, D, generator=g, dtype=torch.float64) for _ in range(2))


def rows(rank: int, per_rank: int = N) -> slice:
    """Rank r's rows of the concatenated batch."""
    return slice(rank * per_rank, (rank + 1) * per_rank)

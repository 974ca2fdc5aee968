"""The `gpu` tests: the CUDA path against float64, the CPU and one process. Skipped without
CUDA (tests/conftest.py); `make gpu-check` runs them (`pytest -m gpu tests/gpu`).

Their bodies are tests/helpers/gpu_checks.py, functions of the device: the CPU smoke of the GPU
check (tests/benchmarks/test_gpu_check.py) runs them on the CPU, so they cannot rot.
"""

import pytest
import torch
from helpers import gpu_checks

pytestmark = pytest.mark.gpu


def test_blocked_ntxent_and_orl_match_float64_on_cuda():
    gpu_checks.blocked_losses_match_float64("cuda")


def test_blocked_losses_at_a_size_that_spans_blocks_match_float64_on_cuda():
    gpu_checks.blocked_losses_match_float64("cuda", n=40, d=128)


def test_compiled_orl_kernels_equal_eager_on_cuda():
    gpu_checks.compiled_equals_eager("cuda")


def test_batched_augmentation_on_cuda_matches_the_cpu():
    gpu_checks.batched_augmentation_matches_cpu("cuda")


def test_fixed_images_cross_as_uint8_and_embed_as_their_eval_transform_on_cuda():
    gpu_checks.fixed_images_embed_on_device("cuda")


def test_bf16_step_trains_with_fp32_projections():
    gpu_checks.bf16_step_trains("cuda")


def test_tension_agrees_with_float64_under_tf32_only_with_the_pinning():
    gpu_checks.tension_precision_under_tf32("cuda")


def _nccl_rank(rank: int, world: int, store: str) -> None:
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        gpu_checks.distributed_matches_one_process(rank, world, f"cuda:{rank}", n=256, d=64)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_nccl_gathered_losses_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    world = torch.cuda.device_count()
    mp.spawn(_nccl_rank, args=(world, str(tmp_path / "store")), nprocs=world, join=True)

"""The bodies of the `gpu` tests (tests/gpu/test_gpu.py), each a function of the device.

On CUDA they are the GPU tests; `benchmarks/gpu_check.py --cpu-smoke` runs them on the CPU at
their small sizes, so that they cannot rot where no GPU is. What only a GPU can show (TF32's
error without the pinning) is asserted only on CUDA; everything else holds on both.
"""

import contextlib

import torch
import torch.distributed as dist

from helpers.reference_losses import naive_ntxent, naive_orl
from orbitcl.losses import NTXentLoss, ORLLoss
from orbitcl.losses.functional import tension
from orbitcl.losses.kernels import anchors, blocked, compiled, precision

TEMPERATURE = 0.5


def _views(n: int, d: int, device: str, spread: float = 0.3, seed: int = 0):
    """Two views (n, d) float32 on `device`, each image's views `spread` apart, leaves."""
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(n, d, generator=g)
    z_b = z_a + spread * torch.randn(n, d, generator=g)
    return (z_a.to(device).requires_grad_(), z_b.to(device).requires_grad_())


def _loss_and_grads(loss_fn, z_a, z_b):
    z_a.grad = z_b.grad = None
    loss = loss_fn(z_a, z_b)
    loss.backward()
    return loss.detach().cpu().double(), z_a.grad.cpu().double(), z_b.grad.cpu().double()


@contextlib.contextmanager
def _small_blocks(rows: int, n_cols: int):
    """The blocked kernels in blocks of `rows` images, so a small batch spans several."""
    saved = blocked.BLOCK_BYTES
    blocked.BLOCK_BYTES = 2 * n_cols * 4 * rows
    try:
        yield
    finally:
        blocked.BLOCK_BYTES = saved


def blocked_losses_match_float64(device: str, n: int = 24, d: int = 16) -> dict[str, float]:
    """Blocked NT-Xent and ORL (eager kernels) in float32 on `device`, several blocks, against
    the naive float64 references: loss and both views' gradients. Returns the errors."""
    errors = {}
    cases = {
        "ntxent": (NTXentLoss(TEMPERATURE), naive_ntxent),
        "orl": (ORLLoss(TEMPERATURE, backend="eager"), naive_orl),
    }
    for name, (loss_fn, reference) in cases.items():
        z_a, z_b = _views(n, d, device)
        ref_a, ref_b = (z.detach().cpu().double().requires_grad_() for z in (z_a, z_b))
        ref = reference(ref_a, ref_b, TEMPERATURE)
        ref.backward()
        with _small_blocks(rows=5, n_cols=2 * n):  # 5 blocks, the last one short
            loss, grad_a, grad_b = _loss_and_grads(loss_fn, z_a, z_b)
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad_a, ref_a.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(grad_b, ref_b.grad, rtol=1e-4, atol=1e-6)
        errors[name] = float((grad_a - ref_a.grad).abs().max())
    return errors


def compiled_equals_eager(device: str, n: int = 256, d: int = 32) -> float:
    """ORL's compiled elementwise kernels (torch.compile) against its eager ones: the same loss
    and gradients to float32 rounding, and compiling did not fall back. Returns the gradient
    error."""
    z_a, z_b = _views(n, d, device)
    eager = _loss_and_grads(ORLLoss(TEMPERATURE, backend="eager"), z_a, z_b)
    fused = _loss_and_grads(ORLLoss(TEMPERATURE, backend="compile"), z_a, z_b)
    assert compiled.broken is None, f"torch.compile fell back to eager: {compiled.broken}"
    for got, want in zip(fused, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    return float((fused[1] - eager[1]).abs().max())


def cifar_batch_augment():
    """CIFAR-10's configured augmentation (conf/dataset/cifar10.yaml), batched."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from orbitcl import CONF_DIR
    from orbitcl.data.batched.augment import BatchAugment

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["dataset=cifar10"])
    return BatchAugment.from_torchvision(instantiate(cfg.dataset.augment))


def batched_augmentation_matches_cpu(device: str, n: int = 64) -> float:
    """CIFAR-10's batched augmentation of a uint8 batch on `device` against the same batch on
    the CPU, from the same seed: the same views to float tolerance. Returns the largest
    difference."""
    augment = cifar_batch_augment()
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    on_cpu = augment(images, torch.Generator().manual_seed(7))
    on_device = augment(images.to(device), torch.Generator().manual_seed(7)).cpu()
    assert on_device.shape == on_cpu.shape == (n, 3, 32, 32)
    assert not torch.equal(on_cpu, images.float() / 255), "the augmentation changed nothing"
    torch.testing.assert_close(on_device, on_cpu, rtol=0, atol=1e-3)
    return float((on_device - on_cpu).abs().max())


def fixed_images_embed_on_device(device: str, n: int = 64) -> float:
    """The diagnostics' fixed test images (digits), held uint8, copied to `device` as uint8 and
    normalised there (`metrics.orbits.embed` with the datamodule's `normalise`), against their
    eval transform made on the CPU and embedded on the same device (IEEE fp32: TF32 would round
    the two paths' 1-ulp input differences apart): the same embeddings to 1e-6. On CUDA the
    normalisation makes no host sync. Returns the largest difference."""
    from orbitcl.data import DigitsDataModule
    from orbitcl.metrics.orbits import embed, fixed_test_images

    datamodule = DigitsDataModule(num_workers=0)
    datamodule.setup()
    images = fixed_test_images(datamodule, n)  # uint8 (n, 1, 8, 8), on the CPU
    seen = []

    def normalise(batch: torch.Tensor) -> torch.Tensor:
        seen.append((batch.dtype, batch.device.type))  # what crossed to the device
        return datamodule.normalise(batch)

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU())
    encoder, projector = encoder.to(device), torch.nn.Linear(16, 8).to(device)
    old = torch.stack([datamodule.eval_transform(image) for image in images])  # float, CPU
    with precision.ieee_fp32():
        ours = embed(encoder, projector, images, batch_size=n // 4, normalise=normalise)
        theirs = embed(encoder, projector, old, batch_size=n // 4)
    assert seen == [(torch.uint8, torch.device(device).type)] * 4, seen
    error = max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True))
    assert error <= 1e-6, error
    if torch.device(device).type == "cuda":
        on_device = images.to(device)  # the mean and std are on the device since the embedding
        torch.cuda.set_sync_debug_mode("error")
        try:
            datamodule.normalise(on_device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return error


def bf16_step_trains(device: str, n: int = 32) -> tuple[float, float]:
    """A bf16-mixed training step of conv_small + projector + ORL on `device`: the loss sees
    fp32 projections (``training.projection``), it is finite, within bf16's rounding of the
    fp32 loss on the same weights, and the optimiser moves the weights. Returns both losses."""
    from orbitcl.models import ConvEncoder, MLPProjector
    from orbitcl.training.projection import project

    torch.manual_seed(0)
    encoder = ConvEncoder(in_channels=1)
    projector = MLPProjector(in_dim=encoder.out_dim, hidden_dim=256)
    encoder, projector = encoder.to(device), projector.to(device)
    params = [*encoder.parameters(), *projector.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    images = torch.randn(2 * n, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    loss_fn = ORLLoss(TEMPERATURE, backend="eager")

    def loss_of() -> torch.Tensor:
        z = project(projector, encoder(images))
        assert z.dtype == torch.float32, z.dtype
        return loss_fn(*z.chunk(2))

    with torch.no_grad():
        fp32 = float(loss_of())
    before = [p.detach().clone() for p in params]
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        loss = loss_of()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss), loss
    loss = float(loss.detach())
    assert abs(loss - fp32) <= 0.05 * abs(fp32), (loss, fp32)
    assert all(not torch.equal(p, q) for p, q in zip(params, before, strict=True))
    return loss, fp32


def tf32_rounded(x: torch.Tensor) -> torch.Tensor:
    """float32 `x` rounded to TF32's 10 mantissa bits (to nearest), as TF32 matmuls read it."""
    bits = x.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


@contextlib.contextmanager
def _unpinned(emulate_tf32: bool):
    """The Gram products without the IEEE pinning: whatever the global setting says. The CPU's
    fp32 products ignore TF32, so with `emulate_tf32` the Gram rows read TF32-rounded inputs."""
    saved = precision.ieee_fp32, blocked.ieee_fp32, anchors.gram_ieee
    precision.ieee_fp32 = blocked.ieee_fp32 = contextlib.nullcontext
    if emulate_tf32:
        anchors.gram_ieee = lambda a, b: tf32_rounded(a) @ tf32_rounded(b).T
    try:
        yield
    finally:
        precision.ieee_fp32, blocked.ieee_fp32, anchors.gram_ieee = saved


@contextlib.contextmanager
def _tf32_globally():
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32, as Lightning's start-up hint suggests
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


PINNED_TOLERANCE = 1e-5  # ||T - T64|| / ||T64|| with IEEE fp32 Gram rows
UNPINNED_AT_LEAST = 1e-4  # the same with TF32's 10-bit mantissas (~3e-4 per Gram entry)


def tension_precision_under_tf32(device: str, n: int = 256, d: int = 128) -> tuple[float, float]:
    """ORL's tension T of tight orbits, float32 on `device` with TF32 switched on globally,
    against T in float64 on the CPU: it agrees to ~1e-5 (relative, Frobenius), and it does not
    without the pinning. The CPU's fp32 products ignore TF32, so there TF32's rounding of the
    products' inputs is emulated (``tf32_rounded``): that checks the tolerances separate the
    two, and only CUDA shows that TF32 reaches the products. Returns (pinned, unpinned)."""
    z_a, z_b = (z.detach() for z in _views(n, d, device, spread=0.1))
    reference = tension(z_a.cpu().double(), z_b.cpu().double())

    def error() -> float:
        t = tension(z_a, z_b).cpu().double()
        return float((t - reference).norm() / reference.norm())

    with _tf32_globally():
        pinned = error()
        with _unpinned(emulate_tf32=torch.device(device).type != "cuda"):
            unpinned = error()
    assert pinned <= PINNED_TOLERANCE, f"pinned T is off float64 by {pinned:.2e}"
    assert unpinned >= UNPINNED_AT_LEAST, (
        f"without the pinning T is off by only {unpinned:.2e}: TF32 did not reach the Gram "
        "products, so this check cannot tell pinned from unpinned"
    )
    return pinned, unpinned


def distributed_matches_one_process(rank: int, world: int, device: str, n: int = 32, d: int = 16):
    """In rank `rank` of an initialised process group of `world`: NT-Xent and ORL with
    ``gather_distributed`` over the ranks' shares of a global batch equal the one-process loss
    on the whole batch, and each rank's gradient is `world` times its rows of the one-process
    gradient (``losses.gather``). Returns, per loss, (largest error, seconds of one gathered
    forward + backward)."""
    import time

    results = {}
    for name, make in (("ntxent", NTXentLoss), ("orl", ORLLoss)):
        g = torch.Generator().manual_seed(0)
        whole = [torch.randn(world * n, d, generator=g) for _ in range(2)]
        own = slice(rank * n, (rank + 1) * n)
        z_a, z_b = (w[own].to(device).requires_grad_() for w in whole)
        start = time.perf_counter()
        loss = make(TEMPERATURE, gather_distributed=True)(z_a, z_b)
        loss.backward()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        ref_a, ref_b = (w.to(device).requires_grad_() for w in whole)
        ref = make(TEMPERATURE)(ref_a, ref_b)
        ref.backward()
        torch.testing.assert_close(mean / world, ref.detach(), rtol=1e-5, atol=1e-6)
        for got, want in ((z_a.grad, ref_a.grad[own]), (z_b.grad, ref_b.grad[own])):
            torch.testing.assert_close(got / world, want, rtol=1e-4, atol=1e-7)
        error = max(float((z_a.grad / world - ref_a.grad[own]).abs().max()), 0.0)
        results[name] = (error, seconds)
    return results

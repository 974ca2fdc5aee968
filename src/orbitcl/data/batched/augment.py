"""Batched augmentation: a torchvision v2 augmentation, applied to a whole batch of uint8 images at
once as tensor ops with per-sample random parameters, on the batch's device.

The per-sample pipeline (DataLoader workers calling torchvision on one image at a time) spends
most of its time in Python and tiny kernels. `BatchAugment.from_torchvision(augment)` reads the
same config (`conf/dataset/*.yaml`'s `augment`) and draws each image's parameters from the same
distributions (`geometry`, `colour`): random resized crops, affine maps and flips
are resampled together in one `grid_sample`; colour jitter, grayscale and blur follow as batched
ops. All randomness comes from one CPU `torch.Generator`, so a seed gives the same augmentations
on the CPU and on a GPU: a CUDA generator (Philox) would draw other numbers from the same seed
than the CPU's (Mersenne Twister), and a run's views would then depend on its device. The draws
are a few numbers per image; they are made first, for the whole batch, and reach the batch's
device in one copy without blocking (`to_device`), before any op on the images.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode, v2

from orbitcl.data.batched.colour import ColorJitter, ColourOp, GaussianBlur, Grayscale
from orbitcl.data.batched.geometry import (
    Affine,
    GeometricOp,
    HorizontalFlip,
    ResizedCrop,
    check_order,
    compose,
    resample,
)

SUPPORTED = (
    "Compose, RandomApply, RandomResizedCrop, RandomAffine, RandomHorizontalFlip, ColorJitter, "
    "RandomGrayscale, GaussianBlur"
)


@dataclass(frozen=True)
class Step:
    """One op and the `RandomApply` gates (indices into `BatchAugment.gate_probs`) it is under:
    a sample gets the op only if all its gates opened for it."""

    op: GeometricOp | ColourOp
    gates: tuple[int, ...] = ()


class BatchAugment:
    """`steps` in order on uint8 images (N, C, H, W) -> float images in [0, 1]; each
    `RandomApply` gate opens for a sample with its probability in `gate_probs`.

    Consecutive geometric steps are fused into one resampling. The same generator state gives
    the same output; every sample draws its own parameters.
    """

    def __init__(self, steps: Sequence[Step] = (), gate_probs: Sequence[float] = ()):
        self.steps = list(steps)
        self.gate_probs = torch.tensor(list(gate_probs), dtype=torch.float64)
        run: list[GeometricOp] = []  # each run of consecutive geometric steps is one resampling
        for step in [*self.steps, None]:
            if step is not None and isinstance(step.op, GeometricOp):
                run.append(step.op)
                continue
            try:
                check_order(run)
            except ValueError as err:
                raise ValueError(
                    f"pipeline='batched' is invalid for this augment: {err}; use "
                    "dataset.pipeline=per_sample"
                ) from err
            run = []

    @classmethod
    def from_torchvision(cls, transform: v2.Transform | None) -> "BatchAugment":
        """The batched version of a torchvision v2 augmentation built from the transforms named
        in SUPPORTED (None: no augmentation). Raises ValueError naming any other transform."""
        steps: list[Step] = []
        gate_probs: list[float] = []
        if transform is not None:
            _collect(transform, (), steps, gate_probs)
        return cls(steps, gate_probs)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 (N, C, H, W) on any device -> float32 (N, C, H', W') in [0, 1]."""
        if images.device.type != "cpu":
            return self._augment(images, generator)
        # On the CPU, one thread: ~100 mid-sized ops, each a parallel region whose threads must
        # all meet. On a 2-core CPU, 2 threads took 15 ms at best for 512 MNIST views (1 thread:
        # 9), and 0.8 s typically when other processes share the cores (1 thread: 14 ms).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._augment(images, generator)
        finally:
            torch.set_num_threads(threads)

    def _augment(self, images: Tensor, generator: torch.Generator) -> Tensor:
        plan = self._plan(len(images), tuple(images.shape[-2:]), generator)
        moved = iter(to_device([t for _, params in plan for t in params.values()], images.device))
        x = images.to(torch.float32).div_(255)
        for op, params in plan:
            params = {k: next(moved) for k in params}
            if isinstance(op, Warp):  # a run of geometric ops: one resampling
                x = resample(x, params["theta"], params["box"], op.fills, op.size)
            else:
                x = op.apply(x, params)
        return x

    def _plan(
        self, n: int, size: tuple[int, int], generator: torch.Generator
    ) -> list[tuple["ColourOp | Warp", dict[str, Tensor]]]:
        """Every parameter of the batch, drawn on the CPU in the steps' order (as the ops would
        draw them one by one): per colour op its parameters, per run of geometric ops a `Warp`
        and its `{theta, box}` (`compose`)."""
        opened = torch.rand(n, len(self.gate_probs), generator=generator, dtype=torch.float64)
        opened = opened < self.gate_probs  # (N, G)
        plan = []
        geometric: list[tuple[GeometricOp, dict]] = []  # a run of geometric steps to fuse
        sizes = [size]
        for step in [*self.steps, None]:
            if step is not None and isinstance(step.op, GeometricOp):
                active = opened[:, list(step.gates)].all(1)  # (N,)
                geometric.append((step.op, step.op.sample(n, sizes[-1], active, generator)))
                sizes.append(step.op.out_size(sizes[-1]))
                continue
            if geometric:
                ops, params = zip(*geometric, strict=True)
                theta, box, fills = compose(list(ops), list(params), sizes)
                plan.append((Warp(fills, sizes[-1]), {"theta": theta, "box": box}))
                geometric, sizes = [], sizes[-1:]
            if step is not None:
                active = opened[:, list(step.gates)].all(1)  # (N,)
                plan.append((step.op, step.op.sample(n, active, generator)))
        return plan

    def __repr__(self) -> str:
        return f"BatchAugment(steps={self.steps}, gate_probs={self.gate_probs.tolist()})"


@dataclass(frozen=True)
class Warp:
    """A run of geometric ops, fused into one resampling to `size` (`compose`, `resample`)."""

    fills: bool
    size: tuple[int, int]


def pack(tensors: Sequence[Tensor]) -> Tensor:
    """CPU tensors, float32 or int64 (indices below 2^31), as one int32 tensor (M,): float32 by
    their bit patterns, int64 narrowed; `unpack` gives them back exactly."""
    parts = []
    for t in tensors:
        if t.dtype == torch.float32:
            parts.append(t.reshape(-1).view(torch.int32))
        elif t.dtype == torch.int64:
            parts.append(t.reshape(-1).to(torch.int32))
        else:
            raise TypeError(f"pack takes float32 and int64 tensors, got {t.dtype}")
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int32)


def unpack(packed: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """The tensors of `pack(like)` from `packed` (on any device), with the shapes and dtypes of
    `like`, read on the host (no sync)."""
    parts = packed.split([t.numel() for t in like])
    return [
        (p.view(torch.float32) if t.dtype == torch.float32 else p.to(torch.int64)).view(t.shape)
        for p, t in zip(parts, like, strict=True)
    ]


def to_device(tensors: Sequence[Tensor], device: torch.device) -> list[Tensor]:
    """CPU parameters -> `device`, in one copy of one packed tensor, pinned so that the copy
    does not block the host, split on the device. On the CPU the same packing, without a copy:
    the path a GPU takes is the one the CPU tests run."""
    packed = pack(tensors)
    if device.type != "cpu":
        packed = packed.pin_memory().to(device, non_blocking=True)
    return unpack(packed, tensors)


def _collect(transform, gates: tuple[int, ...], steps: list[Step], probs: list[float]) -> None:
    """Appends the steps of a torchvision v2 transform tree to `steps` (gates to `probs`)."""
    if isinstance(transform, v2.Compose):
        for inner in transform.transforms:
            _collect(inner, gates, steps, probs)
    elif isinstance(transform, v2.RandomApply):
        probs.append(float(transform.p))
        for inner in transform.transforms:
            _collect(inner, (*gates, len(probs) - 1), steps, probs)
    else:
        steps.append(Step(_batched_op(transform), gates))


def _batched_op(t) -> GeometricOp | ColourOp:
    name = type(t).__name__
    if isinstance(t, v2.RandomResizedCrop):
        mode = getattr(t.interpolation, "value", t.interpolation)  # enum or its string
        _require(name, mode == InterpolationMode.BILINEAR.value, "bilinear interpolation")
        return ResizedCrop(tuple(t.size), tuple(t.scale), tuple(t.ratio))
    if isinstance(t, v2.RandomAffine):
        _require(name, t.center is None, "the image centre as centre")
        _require(name, not any(_fills(t)), "fill 0")
        shear = None if t.shear is None else tuple(t.shear)
        translate = None if t.translate is None else tuple(t.translate)
        scale = None if t.scale is None else tuple(t.scale)
        return Affine(tuple(t.degrees), translate, scale, shear)
    if isinstance(t, v2.RandomHorizontalFlip):
        return HorizontalFlip(t.p)
    if isinstance(t, v2.ColorJitter):
        ranges = (t.brightness, t.contrast, t.saturation, t.hue)
        return ColorJitter(*(None if r is None else tuple(r) for r in ranges))
    if isinstance(t, v2.RandomGrayscale):
        return Grayscale(t.p)
    if isinstance(t, v2.GaussianBlur):
        _require(name, t.kernel_size[0] == t.kernel_size[1], "a square kernel")
        return GaussianBlur(t.kernel_size[0], tuple(t.sigma))
    raise ValueError(
        f"pipeline='batched' is invalid for augment with {name}: the batched pipeline implements "
        f"{SUPPORTED}; use dataset.pipeline=per_sample"
    )


def _fills(t: v2.RandomAffine) -> list[float]:
    fill = t.fill
    values = fill.values() if isinstance(fill, dict) else [fill]
    flat = []
    for value in values:
        flat += value if isinstance(value, list | tuple) else [value or 0]
    return flat


def _require(name: str, condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(
            f"pipeline='batched' is invalid for augment with this {name}: the batched version "
            f"supports only {what}; use dataset.pipeline=per_sample"
        )

"""Batched colour augmentations: torchvision's ColorJitter, RandomGrayscale and GaussianBlur with
per-sample parameters, on float images (N, C, H, W) in [0, 1].

Each op samples on the CPU which samples it changes and how; `apply` runs on the images' device
on those samples only (`index`, gathered and scattered back), so a transform applied with
probability p costs p of the batch, and nothing waits on the device to find out which samples
those are. The formulas are torchvision's for float images (`torchvision.transforms.v2.functional`):
luma weights 0.2989 / 0.587 / 0.114, blends clamped to [0, 1], hue rotated in HSV space,
reflect-padded Gaussian kernels.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Params = dict[str, Tensor]


def grayscale(x: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of RGB images (N, 3, H, W); grey images (N, 1, H, W) are their own."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """factor * x + (1 - factor) * other, clamped to [0, 1]; factor (N,)."""
    return torch.lerp(other, x, factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blends each image with its mean luma (a scalar per image)."""
    return _blend(x, grayscale(x.mean(dim=(2, 3), keepdim=True)), factor)  # luma is linear


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blends each pixel with its luma; grey images are unchanged."""
    return x if x.shape[1] == 1 else _blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotates the hue by `shift` (N,) turns, keeping HSV value and saturation; grey images are
    unchanged. torchvision's RGB -> HSV -> RGB, with the HSV -> RGB step in closed form:
    channel = max - chroma * clamp(min(k, 4 - k), 0, 1), k = (n + 6 hue) mod 6, n = 5, 3, 1."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    high = torch.maximum(torch.maximum(r, g), b)  # (N, H, W); faster than a channel reduction
    chroma = high - torch.minimum(torch.minimum(r, g), b)
    # Hue in sixths of a turn, in torchvision's cases: max is r; else max is g; else b. Masks
    # multiply rather than select (torch.where is several times slower on the CPU).
    is_r = high == r
    is_g = (high == g) & ~is_r
    is_b = ~(is_r | is_g)
    sixths = (g - b) * is_r + (b - r + 2 * chroma) * is_g + (r - g + 4 * chroma) * is_b
    sixths /= chroma.clamp(min=1e-12)  # grey pixels: 0, and any hue gives them back
    # k = (n + 6 (hue + shift)) mod 6 for the channels' n = 5, 3, 1, in one pass.
    n = torch.arange(5.0, 0.0, -2.0, device=x.device).view(1, 3, 1, 1)  # no host-to-device copy
    k = (sixths.add_(shift.view(-1, 1, 1), alpha=6).unsqueeze(1) + n).remainder_(6)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)  # (N, 3, H, W)
    return torch.addcmul(high.unsqueeze(1), chroma.unsqueeze(1), ramp, value=-1)


def gaussian_blur(x: Tensor, weights: Tensor) -> Tensor:
    """Separable blur with one odd 1-D kernel per image, `weights` (N, K), reflect-padded."""
    r = weights.shape[1] // 2
    weights = weights.view(*weights.shape, 1, 1, 1)  # (N, K, 1, 1, 1)
    height, width = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), mode="reflect")  # (N, C, H + 2r, W + 2r)
    rows = sum(weights[:, i] * padded[..., i : i + height, :] for i in range(2 * r + 1))
    return sum(weights[:, i] * rows[..., i : i + width] for i in range(2 * r + 1))


def _chosen(mask: Tensor) -> Tensor:
    return mask.nonzero().flatten()


def apply_to(x: Tensor, index: Tensor, fn, *args: Tensor) -> Tensor:
    """x with samples `index` replaced by fn(x[index], *args), in place."""
    if len(index):  # a CPU-known size: no device sync
        x.index_copy_(0, index, fn(x.index_select(0, index), *args))
    return x


@dataclass(frozen=True)
class ColorJitter:
    """torchvision's `ColorJitter`: brightness, contrast, saturation factors uniform in their
    ranges, hue shift uniform in `hue`, applied in a random order per sample (None: skipped)."""

    brightness: tuple[float, float] | None = None
    contrast: tuple[float, float] | None = None
    saturation: tuple[float, float] | None = None
    hue: tuple[float, float] | None = None

    def functions(self):
        return (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)

    def sample(self, n: int, active: Tensor, generator: torch.Generator) -> Params:
        """For each position p in the order and each adjustment j: `index{p}{j}`, the samples
        adjusted by j at p, and `factor{p}{j}`, their factors."""
        order = torch.rand(n, 4, generator=generator).argsort(1)  # (N, 4): random permutations
        params = {}
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        for j, bounds in enumerate(ranges):
            if bounds is None:
                continue
            factor = torch.empty(n).uniform_(*bounds, generator=generator)
            for p in range(4):
                index = _chosen(active & (order[:, p] == j))
                params[f"index{p}{j}"], params[f"factor{p}{j}"] = index, factor[index]
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        for p in range(4):
            for j, fn in enumerate(self.functions()):
                if f"index{p}{j}" in params:
                    apply_to(x, params[f"index{p}{j}"], fn, params[f"factor{p}{j}"])
        return x


@dataclass(frozen=True)
class Grayscale:
    """torchvision's `RandomGrayscale(p)`: luma in every channel, with probability p."""

    p: float = 0.1

    def sample(self, n: int, active: Tensor, generator: torch.Generator) -> Params:
        return {"index": _chosen(active & (torch.rand(n, generator=generator) < self.p))}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return apply_to(x, params["index"], lambda images: grayscale(images).expand_as(images))


@dataclass(frozen=True)
class GaussianBlur:
    """torchvision's `GaussianBlur(kernel_size, sigma)`: one sigma per image, uniform in
    `sigma`, for both axes (torchvision's kernel weights exp(-d^2 / (2 sigma^2)), normalised)."""

    kernel_size: int
    sigma: tuple[float, float]

    def sample(self, n: int, active: Tensor, generator: torch.Generator) -> Params:
        sigma = torch.empty(n).uniform_(*self.sigma, generator=generator)
        index = _chosen(active)
        r = self.kernel_size // 2
        offsets = torch.arange(-r, r + 1, dtype=torch.float32)
        weights = torch.softmax(-(offsets / sigma[index, None]).square() / 2, dim=1)  # (n, K)
        return {"index": index, "weights": weights}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return apply_to(x, params["index"], gaussian_blur, params["weights"])


ColourOp = ColorJitter | Grayscale | GaussianBlur

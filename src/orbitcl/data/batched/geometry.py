"""Batched geometric augmentations: torchvision's random resized crop, affine map and horizontal
flip with per-sample parameters, resampled together in one `grid_sample`.

Each op samples its parameters for the whole batch on the CPU (torchvision's `make_params` rules)
and gives, per sample, the inverse of its map as a 3x3 matrix on grid_sample's coordinates (x
right, y down, the image spanning [-1, 1], align_corners=False). A chain of ops is one matrix
product, so the source image is sampled once, bilinearly: one resampling instead of one per op,
and no rounding to uint8 between them. The crop's clamping at its border pixels and an affine
map's fill are boxes in the source image (a crop maps axis to axis), hence the one rule on the
order: a crop comes first, then flips and at most one affine map.

Where this differs from the per-sample pipeline: torchvision's `RandomAffine` samples the nearest
pixel by default; here every op is bilinear. Fill (outside an affine map's source) is 0.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Size = tuple[int, int]  # (height, width)
Params = dict[str, Tensor]  # per-sample parameters, each (N,), on the CPU


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return torch.empty(n, dtype=torch.float64).uniform_(low, high, generator=generator)


def _matrices(n: int) -> Tensor:
    return torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)  # (N, 3, 3)


@dataclass(frozen=True)
class ResizedCrop:
    """torchvision's `RandomResizedCrop(size, scale, ratio)`: a crop of random area (a fraction
    in `scale` of the image) and aspect ratio (log-uniform in `ratio`), resized to `size`.

    As in torchvision: up to 10 tries for a crop that fits, else the central crop of the ratio
    nearest the image's; bilinear resampling that clamps at the crop's border pixels. Without
    antialiasing, so it equals torchvision's only when upsampling (crops no larger than `size`,
    as in orbitcl's configs, where `size` is the image size).
    """

    size: Size
    scale: tuple[float, float]
    ratio: tuple[float, float]

    def out_size(self, in_size: Size) -> Size:
        return self.size

    def sample(self, n: int, in_size: Size, active: Tensor, generator: torch.Generator) -> Params:
        """Crop boxes `top, left, height, width` (N,) within `in_size`; the whole image where
        not `active`."""
        height, width = in_size
        tries = 10
        area = height * width * _uniform(n * tries, *self.scale, generator).view(n, tries)
        log_ratio = _uniform(n * tries, *map(math.log, self.ratio), generator).view(n, tries)
        aspect = log_ratio.exp()
        w = (area * aspect).sqrt().round()  # (N, tries); round half to even, like Python's
        h = (area / aspect).sqrt().round()
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits.to(torch.int8).argmax(1, keepdim=True)  # the first try that fits
        w, h, found = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0], fits.any(1)
        # Fallback: the central crop with the ratio in `ratio` nearest the image's.
        fallback_w, fallback_h = float(width), float(height)
        if width / height < min(self.ratio):
            fallback_h = float(round(width / min(self.ratio)))
        elif width / height > max(self.ratio):
            fallback_w = float(round(height * max(self.ratio)))
        w = torch.where(found, w, fallback_w)
        h = torch.where(found, h, fallback_h)
        top = (torch.rand(n, generator=generator, dtype=torch.float64) * (height - h + 1)).floor()
        left = (torch.rand(n, generator=generator, dtype=torch.float64) * (width - w + 1)).floor()
        top = torch.where(found, top, ((height - h) / 2).floor())
        left = torch.where(found, left, ((width - w) / 2).floor())
        # Not active: the whole image (an identity when `size` is the image size).
        whole = torch.tensor([0.0, 0.0, height, width], dtype=torch.float64)
        boxes = torch.stack([top, left, h, w], 1).where(active[:, None], whole)  # (N, 4)
        return dict(zip(("top", "left", "height", "width"), boxes.unbind(1), strict=True))

    def inverse(self, params: Params, in_size: Size, out_size: Size) -> Tensor:
        """(N, 3, 3): the output, [-1, 1], onto the crop box. Pixel o of the output samples the
        image at left + (o + 0.5) * w / out - 0.5, as `interpolate(crop, size, "bilinear",
        align_corners=False)`, which also clamps to the crop's pixels (see `crop_boxes`)."""
        height, width = in_size
        m = _matrices(len(params["top"]))
        m[:, 0, 0], m[:, 0, 2] = (
            params["width"] / width,
            (2 * params["left"] + params["width"]) / width - 1,
        )
        m[:, 1, 1], m[:, 1, 2] = (
            params["height"] / height,
            (2 * params["top"] + params["height"]) / height - 1,
        )
        return m

    @staticmethod
    def box(params: Params, in_size: Size) -> Tensor:
        """(N, 2, 2): the crop's edges [[x0, y0], [x1, y1]] in the image, in [-1, 1]."""
        height, width = in_size
        x0, y0 = 2 * params["left"] / width - 1, 2 * params["top"] / height - 1
        x1, y1 = x0 + 2 * params["width"] / width, y0 + 2 * params["height"] / height
        return torch.stack([torch.stack([x0, y0], 1), torch.stack([x1, y1], 1)], 1)


@dataclass(frozen=True)
class Affine:
    """torchvision's `RandomAffine(degrees, translate, scale, shear)` about the image centre:
    angle uniform in `degrees`, translation a whole number of pixels (rounded from uniform in
    +-`translate` x size), scale uniform in `scale`, shear uniform in `shear` (x; y too when it
    has 4 values). Pixels mapped from outside the image are 0."""

    degrees: tuple[float, float]
    translate: tuple[float, float] | None = None
    scale: tuple[float, float] | None = None
    shear: tuple[float, ...] | None = None

    def out_size(self, in_size: Size) -> Size:
        return in_size

    def sample(self, n: int, in_size: Size, active: Tensor, generator: torch.Generator) -> Params:
        """The inverse map's matrix entries `m0 ... m5` (N,) in pixels about the image centre:
        source = [[m0, m1], [m3, m4]] @ output + [m2, m5]; the identity where not `active`."""
        height, width = in_size
        angle = _uniform(n, *self.degrees, generator).deg2rad()
        tx = ty = torch.zeros(n, dtype=torch.float64)
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * width, self.translate[1] * height
            tx = _uniform(n, -max_dx, max_dx, generator).round()
            ty = _uniform(n, -max_dy, max_dy, generator).round()
        scale = torch.ones(n, dtype=torch.float64)
        if self.scale is not None:
            scale = _uniform(n, *self.scale, generator)
        shear_x = shear_y = torch.zeros(n, dtype=torch.float64)
        if self.shear is not None:
            shear_x = _uniform(n, self.shear[0], self.shear[1], generator).deg2rad()
            if len(self.shear) == 4:
                shear_y = _uniform(n, self.shear[2], self.shear[3], generator).deg2rad()
        # torchvision's _get_inverse_affine_matrix, centre (0, 0): forward map T * RSS, where
        # RSS = [[a, b], [c, d]] rotates, scales and shears; inverse RSS^-1 (det 1 / scale^2).
        a = (angle - shear_y).cos() / shear_y.cos()
        b = -(a * shear_x.tan() + angle.sin())
        c = (angle - shear_y).sin() / shear_y.cos()
        d = angle.cos() - c * shear_x.tan()
        m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale
        m2, m5 = -(m0 * tx + m1 * ty), -(m3 * tx + m4 * ty)
        matrix = torch.stack([m0, m1, m2, m3, m4, m5], 1)  # (N, 6)
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
        matrix = matrix.where(active[:, None], identity)
        return {f"m{i}": value for i, value in enumerate(matrix.unbind(1))}

    def inverse(self, params: Params, in_size: Size, out_size: Size) -> Tensor:
        """(N, 3, 3): the pixel-unit matrix about the centre, on [-1, 1] (x scaled by 2 / W, y
        by 2 / H, as torchvision's `_affine_grid`). Pixels mapped from outside the image are
        filled (`compose`)."""
        height, width = in_size
        m = _matrices(len(params["m0"]))
        m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = (
            params["m0"],
            params["m1"] * height / width,
            params["m2"] * 2 / width,
        )
        m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = (
            params["m3"] * width / height,
            params["m4"],
            params["m5"] * 2 / height,
        )
        return m


@dataclass(frozen=True)
class HorizontalFlip:
    """torchvision's `RandomHorizontalFlip(p)`: mirrors left-right with probability `p`."""

    p: float = 0.5

    def out_size(self, in_size: Size) -> Size:
        return in_size

    def sample(self, n: int, in_size: Size, active: Tensor, generator: torch.Generator) -> Params:
        return {"flip": (torch.rand(n, generator=generator) < self.p) & active}

    def inverse(self, params: Params, in_size: Size, out_size: Size) -> Tensor:
        """(N, 3, 3): x -> -x where flipped (pixel o -> W - 1 - o)."""
        m = _matrices(len(params["flip"]))
        m[:, 0, 0] = 1 - 2 * params["flip"].to(torch.float64)
        return m


GeometricOp = ResizedCrop | Affine | HorizontalFlip


def check_order(ops: list[GeometricOp]) -> None:
    """Raises ValueError unless a crop, if any, comes first and there is at most one affine map:
    what `compose` can express with one matrix and two boxes."""
    if any(isinstance(op, ResizedCrop) for op in ops[1:]):
        raise ValueError("RandomResizedCrop must come before the other geometric transforms")
    if sum(isinstance(op, Affine) for op in ops) > 1:
        raise ValueError("at most one RandomAffine per run of geometric transforms")


def compose(
    ops: list[GeometricOp], params: list[Params], sizes: list[Size]
) -> tuple[Tensor, Tensor, bool]:
    """On the CPU, for `ops` in order (`ops[k]` takes `sizes[k]` to `sizes[k + 1]`): the inverse
    map theta (N, 2, 3), output [-1, 1] -> source [-1, 1], for `F.affine_grid`; the box
    (N, 2, 2) of the crop's edges in the source ([-1, 1] without a crop); and whether points
    outside the box are filled with 0 (with an affine map) rather than clamped to it."""
    check_order(ops)
    theta = _matrices(len(next(iter(params[0].values()))))
    for op, p, in_size, out_size in zip(ops, params, sizes, sizes[1:], strict=False):
        theta = theta @ op.inverse(p, in_size, out_size)  # output -> ... -> source
    if isinstance(ops[0], ResizedCrop):
        box = ResizedCrop.box(params[0], sizes[0])
    else:
        box = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64).expand(len(theta), 2, 2)
    # The affine map's source is the crop's output, which the crop maps axis to axis onto the
    # box: a point is filled where the affine map takes it out of that output, i.e. out of the
    # box. Points inside are clamped to the box's outer pixel centres, as the crop's resize does.
    fills = any(isinstance(op, Affine) for op in ops)
    return theta[:, :2].to(torch.float32), box.to(torch.float32), fills


def resample(images: Tensor, theta: Tensor, box: Tensor, fills: bool, size: Size) -> Tensor:
    """images (N, C, H0, W0) -> (N, C, *size) sampled at theta's points (`compose`), on the
    images' device."""
    # F.affine_grid's points, theta @ (x, y, 1) at the output's pixel centres, as broadcast sums
    # into planes (N, 2, H, W): on the CPU several times faster than its batched matrix product
    # of odd shapes, and than per-sample bounds on the interleaved (N, H, W, 2) layout.
    height, width = size
    xs = torch.arange(width, dtype=theta.dtype, device=theta.device).mul_(2 / width)
    ys = torch.arange(height, dtype=theta.dtype, device=theta.device).mul_(2 / height)
    xs, ys = xs.add_(1 / width - 1), ys.add_(1 / height - 1)  # pixel centres in [-1, 1]
    t = theta[..., None, None]  # (N, 2, 3, 1, 1)
    points = t[:, :, 0] * xs + torch.addcmul(t[:, :, 2], t[:, :, 1], ys[:, None])  # (N, 2, H, W)
    low, high = box[:, 0, :, None, None], box[:, 1, :, None, None]  # (N, 2, 1, 1): x, y
    inside = None
    if fills:  # (N, H, W): within the box
        within = (points - (low + high) / 2).abs_().le_((high - low) / 2)  # (N, 2, H, W)
        inside = within[:, 0].logical_and_(within[:, 1])
    # Half a source pixel in x and in y, filled on the device (no host-to-device copy).
    half_pixel = points.new_full((1, 2, 1, 1), 1 / images.shape[-1])
    half_pixel[:, 1] = 1 / images.shape[-2]
    points = points.clamp_(min=low + half_pixel, max=high - half_pixel)
    grid = points.permute(0, 2, 3, 1)  # (N, H, W, 2), a view: grid_sample takes its strides
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out if inside is None else out.mul_(inside.unsqueeze(1))

"""Rotated MNIST: continuous labels for y-Aware (geometry.md: "labels on a sphere reach
L = H(W); labels on a line ... keep L > H(W)"). Every image is turned once by its own random
angle, and the angle is its training label, on a circle or on a line."""

import math

import numpy as np
import torch
from torch import Tensor

from orbitcl.checks.numbers import require_in
from orbitcl.data.batched.geometry import Affine, resample
from orbitcl.data.datamodule import MNISTDataModule
from orbitcl.data.sources import Split

LABEL_SPACES = ("circle", "line")


def rotate(images: Tensor, degrees: Tensor, chunk: int = 4096) -> Tensor:
    """Images uint8 (N, C, H, W), each turned anticlockwise by its angle `degrees` (N,) about
    its centre: bilinear, 0 where the source lies outside the image, rounded back to uint8 (what
    torchvision's `rotate` does with bilinear interpolation)."""
    size = tuple(images.shape[-2:])
    out = torch.empty_like(images)
    for start in range(0, len(images), chunk):  # bounds the float copies and sampling grids
        angle = degrees[start : start + chunk].double().deg2rad()
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        # The inverse map's entries of `Affine` (geometry.py) for a rotation alone, by -angle:
        # torchvision's affine maps turn clockwise, its `rotate` anticlockwise.
        params = {"m0": cos, "m1": -sin, "m2": zero, "m3": sin, "m4": cos, "m5": zero}
        theta = Affine((0.0, 0.0)).inverse(params, size, size)[:, :2].float()  # (n, 2, 3)
        box = torch.tensor([[-1.0, -1.0], [1.0, 1.0]]).expand(len(angle), 2, 2)  # whole image
        x = images[start : start + chunk].float().div_(255)
        turned = resample(x, theta, box, fills=True, size=size)
        out[start : start + chunk] = turned.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return out


class RotatedMNISTDataModule(MNISTDataModule):
    """MNIST whose images are each rotated about their centre by an angle drawn once, uniform in
    [-`max_degrees`, `max_degrees`], from `rotation_seed` (one stream per split): fixed per
    image, the same in every epoch and every run. The training labels are those angles:

    - `label_space="circle"`: `(cos a, sin a)` (N, 2), on the unit circle (a sphere: y-Aware can
      reach its optimum);
    - `label_space="line"`: the angle `a` in radians (N,), on a line. For nearby angles the two
      distances agree (chord ~ arc), so `sigma` means the same in both; the line does not wrap
      (-179 and 179 degrees lie 6.25 apart, not 0.03).

    The kNN bank (the rotated training images) and queries (the rotated test images) carry the
    digits' class labels, so kNN, class geometry and `orbitcl.evaluate` measure how well digits
    are told apart across rotations; the online linear classifier, which learns from the
    training labels, does not run. The training augmentation is MNIST's (its small random affine
    turns each view by up to 15 degrees more).
    """

    def __init__(
        self,
        label_space: str = "circle",
        max_degrees: float = 180.0,
        rotation_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if label_space not in LABEL_SPACES:
            raise ValueError(
                f"label_space={label_space!r} is invalid: must be one of {', '.join(LABEL_SPACES)}"
            )
        require_in("max_degrees", max_degrees, 0, 180, "(]")
        self.label_space = label_space
        self.max_degrees = float(max_degrees)
        self.rotation_seed = rotation_seed
        shape = "(cos, sin) on a circle" if label_space == "circle" else "in radians, on a line"
        self.continuous_labels = (
            f"label_space={label_space!r} labels each training image with its rotation angle, "
            f"{shape}"
        )

    def angles(self, n: int, train: bool) -> Tensor:
        """The `n` images' angles in degrees (N,), float64: seeded by (rotation_seed, split)."""
        entropy = [self.rotation_seed, int(train)]  # SeedSequence mixes them: no collisions
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        uniform = torch.rand(n, generator=generator, dtype=torch.float64)
        return (2 * uniform - 1) * self.max_degrees

    def angle_labels(self, degrees: Tensor) -> Tensor:
        """float32 labels of `degrees` (N,): (N, 2) on the circle, (N,) radians on the line."""
        radians = degrees * (math.pi / 180)
        if self.label_space == "circle":
            return torch.stack([radians.cos(), radians.sin()], 1).float()
        return radians.float()

    def load_split(self, train: bool) -> Split:
        """The rotated split, with the digits' class labels."""
        images, digits = super().load_split(train)
        return rotate(images, self.angles(len(images), train)), digits

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:
            super().setup(stage)  # rotated splits labelled by digit; the bank is the train split
            images, _ = self._train
            self._train = images, self.angle_labels(self.angles(len(images), train=True))

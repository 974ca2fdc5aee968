"""Image encoders. Each one exposes `out_dim`, the width of the features it returns."""

from collections.abc import Sequence

import torch
from torch import nn

from orbitcl.checks.numbers import require_int
from orbitcl.models.torchvision_encoder import TorchvisionEncoder


class ConvEncoder(nn.Module):
    """A small CNN for small grayscale images (8x8 digits, 28x28 MNIST).

    Each stage is conv3x3 -> BatchNorm -> ReLU; the first keeps the resolution, the later ones
    halve it. The last feature map is average-pooled to a `pool_size` x `pool_size` grid and
    flattened, so it works for any input size. With `pool_size` > 1 the features keep where
    things are, which a shallow net needs: a digit is told by the layout of its strokes, and the
    receptive field of three stages is only 9x9 pixels.
    """

    def __init__(
        self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128), pool_size: int = 1
    ):
        super().__init__()
        if not widths or min(widths) < 1:
            raise ValueError(f"widths={list(widths)} is invalid: must be non-empty and positive")
        require_int("pool_size", pool_size, 1)
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, width in enumerate(widths):
            stride = 1 if stage == 0 else 2
            layers += [
                nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        layers += [nn.AdaptiveAvgPool2d(pool_size), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out_dim = channels * pool_size**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, out_dim)
        return self.features(x)


class ResNet18CIFAR(TorchvisionEncoder):
    """ResNet-18 with the CIFAR stem used by SimCLR for 32x32 images: `TorchvisionEncoder` with
    `name=resnet18, cifar_stem=True` (what `model=resnet18_cifar` now builds).

    Kept for run directories written before the timm and torchvision encoders, whose configs
    name this class: its state dict keys (`net.*`) and architecture are those of
    `TorchvisionEncoder("resnet18", cifar_stem=True)`, so their checkpoints load into either.
    """

    def __init__(self, in_channels: int = 3):
        super().__init__("resnet18", in_channels=in_channels, cifar_stem=True)

"""Image encoders. Each one exposes `out_dim`, the width of the features it returns."""

from collections.abc import Sequence

import torch
import torchvision
from torch import nn


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
        if pool_size < 1:
            raise ValueError(f"pool_size={pool_size} is invalid: must be an integer >= 1")
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


class ResNet18CIFAR(nn.Module):
    """ResNet-18 with the CIFAR stem used by SimCLR for 32x32 images.

    The ImageNet stem (7x7 stride-2 conv + max-pool) would shrink a 32x32 image to 8x8 before the
    first block; the CIFAR stem is a 3x3 stride-1 conv and no max-pool.
    """

    def __init__(self, in_channels: int = 3):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.out_dim = net.fc.in_features  # 512
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, 32, 32) -> (B, 512)
        return self.net(x)

    def torchvision_recipe(self, path: str) -> str:
        """Python code that loads this encoder's state dict, saved at `path` (`orbitcl.export`),
        into torchvision's `resnet18`: its keys lose the `net.` prefix, and the stem is replaced
        by this one, which torchvision's 7x7 stride-2 conv and max-pool cannot hold."""
        return (
            "import torch, torchvision\n"
            "resnet = torchvision.models.resnet18(weights=None)\n"
            f"resnet.conv1 = torch.nn.Conv2d({self.net.conv1.in_channels}, 64, kernel_size=3, "
            "stride=1, padding=1, bias=False)\n"
            "resnet.maxpool = torch.nn.Identity()\n"
            "resnet.fc = torch.nn.Identity()  # features (N, 512); trained without a classifier\n"
            f"state = torch.load({path!r}, weights_only=True)\n"
            'resnet.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})\n'
        )

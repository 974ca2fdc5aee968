"""Encoders map images to features; projectors map features to the space the loss sees."""

from orbitcl.models.encoders import ConvEncoder, ResNet18CIFAR
from orbitcl.models.library import LibraryEncoder
from orbitcl.models.projector import MLPProjector
from orbitcl.models.timm_encoder import TimmEncoder
from orbitcl.models.torchvision_encoder import TorchvisionEncoder

__all__ = [
    "ConvEncoder",
    "LibraryEncoder",
    "MLPProjector",
    "ResNet18CIFAR",
    "TimmEncoder",
    "TorchvisionEncoder",
]

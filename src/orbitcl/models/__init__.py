"""Encoders map images to features; projectors map features to the space the loss sees."""

from orbitcl.models.encoders import ConvEncoder, ResNet18CIFAR
from orbitcl.models.projector import MLPProjector

__all__ = ["ConvEncoder", "MLPProjector", "ResNet18CIFAR"]

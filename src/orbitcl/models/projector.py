"""The projection head between encoder features and the contrastive loss (SimCLR's g)."""

import torch
from torch import nn

from orbitcl.checks.numbers import require_int


class MLPProjector(nn.Module):
    """Linear -> BatchNorm -> ReLU, repeated, then a final Linear to `out_dim`.

    `in_dim` is the encoder's `out_dim`; it is passed at build time rather than configured, so the
    config cannot disagree with the encoder.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128, num_layers: int = 2):
        super().__init__()
        for name, value, low in (
            ("in_dim", in_dim, 1),
            ("hidden_dim", hidden_dim, 1),
            ("out_dim", out_dim, 1),
            ("num_layers", num_layers, 1),
        ):
            require_int(name, value, low)
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(width, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim)]
            layers.append(nn.ReLU(inplace=True))
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # (B, in_dim) -> (B, out_dim)
        return self.net(h)

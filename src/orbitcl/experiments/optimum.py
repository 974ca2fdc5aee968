"""The optimum a loss aims for: free unit embeddings optimised under any orbitcl loss (what
`python -m orbitcl.optimum` prints, and `experiments.optimum_comparison` draws beside a run).

No encoder and no data: two views per label, 2N free unit vectors in R^dim, float64, moved by
Riemannian gradient steps (the gradient projected on the sphere's tangent space, then the rows
renormalised) until the loss stops falling. The result is the loss's target geometry
(geometry.md, "Optimal geometries").
"""

import torch
from torch import Tensor, nn

from orbitcl.checks.numbers import require_int
from orbitcl.losses.base import Loss
from orbitcl.losses.weighted import WeightedInfoNCELoss, weight_entropy


def optimal_embeddings(
    loss: nn.Module,
    labels: Tensor,
    dim: int,
    steps: int = 3000,
    lr: float = 8.0,
    seed: int = 0,
    tolerance: float = 1e-14,
) -> Tensor:
    """Unit rows (2N, dim), ordered `[view a; view b]`, minimising `loss` for images with
    `labels` (N,) (class indices or continuous labels, as the loss needs; ignored by losses that
    need none). Stops after `steps` or once a step lowers the loss by less than `tolerance`."""
    require_int("dim", dim, 1)
    n = len(labels)
    generator = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(
        torch.randn(2 * n, dim, generator=generator, dtype=torch.float64), dim=1
    )
    takes_labels = isinstance(loss, Loss) and loss.needs.labels
    labels = labels.double() if labels.is_floating_point() else labels
    previous = float("inf")
    for _ in range(steps):
        z.requires_grad_(True)
        value = loss(z[:n], z[n:], labels) if takes_labels else loss(z[:n], z[n:])
        (grad,) = torch.autograd.grad(value, z)
        with torch.no_grad():
            tangent = grad - (grad * z).sum(1, keepdim=True) * z  # on the sphere's tangent space
            z = torch.nn.functional.normalize(z - lr * tangent, dim=1)
        if previous - value.item() < tolerance and previous >= value.item():
            break
        previous = value.item()
    return z.detach()


def prototypes_cosines(z: Tensor, labels: Tensor) -> Tensor:
    """The C x C cosines of the normalised class means of unit rows z (2N, d), labels (N,)."""
    from orbitcl.metrics.class_geometry import prototype_cosines

    return prototype_cosines(z, labels.repeat(2), int(labels.max()) + 1)


def summary(loss: nn.Module, z: Tensor, labels: Tensor) -> dict:
    """The optimum's loss, its class prototypes' cosines and, for a weighted loss, H(W)."""
    n = len(labels)
    takes_labels = isinstance(loss, Loss) and loss.needs.labels
    with torch.no_grad():
        value = loss(z[:n], z[n:], labels) if takes_labels else loss(z[:n], z[n:])
    out = {"loss": value.item()}
    if isinstance(loss, WeightedInfoNCELoss):
        out["entropy"] = weight_entropy(loss.weights(labels, torch.float64)).item()
        out["loss_minus_entropy"] = out["loss"] - out["entropy"]
    if not labels.is_floating_point():
        out["prototype_cosines"] = prototypes_cosines(z, labels).tolist()
    return out

"""VICReg: invariance, variance and covariance of two views' embeddings, no negatives.

Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022.
"""

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from orbitcl.checks.numbers import require_in, require_number
from orbitcl.losses.base import ContrastiveLoss


def at_least_float32(*zs: Tensor) -> list[Tensor]:
    """The tensors in float32 at least (float64 stays): batch statistics of half-precision
    embeddings would be rounding noise."""
    return [z.float() if z.dtype in (torch.float16, torch.bfloat16) else z for z in zs]


def off_diagonal(c: Tensor) -> Tensor:
    """The d(d - 1) off-diagonal entries of a square (d, d) matrix, as a flat view (no mask)."""
    d = len(c)
    return c.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def _variance(z: Tensor, eps: float) -> Tensor:
    """``v(Z) = mean_j relu(1 - sqrt(Var(z^j) + eps))``, Var unbiased over the N rows."""
    return F.relu(1 - (z.var(dim=0) + eps).sqrt()).mean()


def _covariance(z: Tensor) -> Tensor:
    """``c(Z) = sum_{i != j} C(Z)_ij^2 / d``, C the unbiased (d, d) covariance of the rows."""
    centred = z - z.mean(dim=0)  # (N, d)
    cov = centred.T @ centred / (len(z) - 1)  # (d, d)
    return off_diagonal(cov).square().sum() / z.shape[1]


def vicreg(
    z_a: Tensor,
    z_b: Tensor,
    invariance: float = 25.0,
    variance: float = 25.0,
    covariance: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """VICReg as the paper's Algorithm 1 writes it, on embeddings ``z_a``, ``z_b`` (N, d), N >= 2:

    ``lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]``

    with ``s`` the mean squared error over all N d coordinates (``F.mse_loss``), ``v`` the hinge
    of each dimension's standard deviation ``sqrt(Var + eps)`` below 1, averaged over the d
    dimensions, ``c`` the squared off-diagonal entries of the covariance summed and divided by d.
    Variances and covariances are unbiased (over N - 1). float32 at least.
    """
    if z_a.ndim != 2 or z_a.shape != z_b.shape or len(z_a) < 2:
        raise ValueError(
            "VICReg needs two views of the same shape (N, d) with N >= 2 (batch statistics), "
            f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    z_a, z_b = at_least_float32(z_a, z_b)
    return (
        invariance * F.mse_loss(z_a, z_b)
        + variance * (_variance(z_a, eps) + _variance(z_b, eps))
        + covariance * (_covariance(z_a) + _covariance(z_b))
    )


class VICRegLoss(ContrastiveLoss):
    """VICReg (Bardes et al., ICLR 2022): invariance, variance and covariance terms, weights
    (25, 25, 1) and epsilon 1e-4 as in the paper.

    Conventions (``vicreg``) against the authors' repository and lightly's ``VICRegLoss``: both
    halve the variance term (``std_loss = mean(relu(1 - std_a)) / 2 + mean(relu(1 - std_b)) /
    2``), where the paper's Algorithm 1, followed here, sums the two views' hinges; with the same
    coefficients lightly's loss is ours minus ``mu [v(Z) + v(Z')] / 2``, and equals ours with
    ``variance = mu / 2`` (``tests/losses/test_vicreg.py`` shows it explains the whole
    difference). The paper's text writes ``s`` as a mean over N of squared norms (a factor d);
    its Algorithm 1 and all the code use the mean over N d, as here.

    Under DDP (``gather_distributed``) the views of all ranks are gathered with gradients and
    every rank computes the loss of the **global** batch: the variances and covariances are
    those of all W n rows, so W ranks equal one process (``orbitcl.losses.gather``: the
    gather's backward sums the ranks' gradients, DDP averages them). lightly gathers too (its
    invariance term stays the rank's own, which has the same mean).
    """

    paper: ClassVar[str] = (
        "Bardes, Ponce and LeCun 2022, VICReg: Variance-Invariance-Covariance Regularization "
        "for Self-Supervised Learning"
    )
    formula: ClassVar[str] = "orbitcl.losses.vicreg.vicreg"
    contrasts_negatives: ClassVar[bool] = False  # two views' statistics, no negatives

    def __init__(
        self,
        invariance: float = 25.0,
        variance: float = 25.0,
        covariance: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        for name, value in (
            ("invariance", invariance),
            ("variance", variance),
            ("covariance", covariance),
        ):
            require_number(name, value, 0)
        require_in("eps", eps, 0, math.inf, "()")
        self.invariance = invariance
        self.variance = variance
        self.covariance = covariance
        self.eps = eps

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        # The global batch's loss on every rank: batch statistics are not a mean over images.
        return vicreg(z_a, z_b, self.invariance, self.variance, self.covariance, self.eps)

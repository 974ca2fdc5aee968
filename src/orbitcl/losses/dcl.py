"""Decoupled Contrastive Learning (Yeh et al. 2022): DCL and its weighted form DCLW, as modules."""

from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss
from orbitcl.losses.functional import check_temperature


def check_sigma(sigma: float) -> None:
    """Raise ValueError unless sigma > 0."""
    if not sigma > 0:  # `not >` also rejects NaN
        raise ValueError(f"sigma={sigma} is invalid: must be > 0")


def von_mises_fisher_weights(z_a: Tensor, z_b: Tensor, sigma: float) -> Tensor:
    """DCLW's weights of the N positive pairs, ``w_i = 2 - exp(s_i / sigma) / mean_j exp(s_j /
    sigma)`` with ``s_i`` the cosine of image i's two views: (N,), detached (see ``DCLWLoss``)."""
    check_sigma(sigma)
    z = kernels.unit_anchors(z_a.detach(), z_b.detach(), 1, "DCLW's weights")
    n = len(z_a)
    cosines = (z[:n] * z[n:]).sum(1)  # (N,)
    return 2 - n * torch.softmax(cosines / sigma, 0)


def dcl(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    weights: Tensor | None = None,
    images: slice | None = None,
) -> Tensor:
    """DCL: ``mean_i [-w sim(i, p(i)) / tau + logsumexp_{k not in {i, p(i)}} sim(i, k) / tau]``
    over the anchors of ``images`` (default: all 2N): NT-Xent without the positive in the
    denominator. ``weights`` (N,), one per image, scale the positive terms (DCLW); default 1."""
    check_temperature(temperature)
    opening = kernels.dense_opening(z_a, z_b, images, "DCL (at least one negative per anchor)")
    logits = opening.gram.div_(temperature)  # (2n, 2N)
    # Decoupling: neither i nor p(i) is in the denominator.
    positive = kernels.split_positive_(logits, opening)  # (2n,)
    if weights is not None:
        positive = positive * weights.to(positive.dtype).repeat(2)[opening.cols]
    return (logits.logsumexp(1) - positive).mean()


class DCLLoss(ContrastiveLoss):
    """Decoupled contrastive loss (Yeh, Hong, Hsu, Liu, Chen and LeCun, "Decoupled Contrastive
    Learning", ECCV 2022, eq. 6): NT-Xent with the positive removed from the denominator,

    ``L = mean_i [-z_i . z_p(i) / tau + log sum_{k not in {i, p(i)}} exp(z_i . z_k / tau)]`` on
    ``z = normalize(cat([z_a, z_b]))``, over all 2N anchors (both views of every image).

    It equals lightly's ``DCLLoss(temperature)`` (one process; float64, to rounding): lightly's
    ``0.5 * (loss0 + loss1)`` is this mean over the anchors of each view in turn. Under DDP
    (``gather_distributed``) each rank takes the mean over its own anchors against the gathered
    batch, so the mean of the ranks' losses is the global loss, as in lightly.
    """

    paper: ClassVar[str] = (
        "Yeh, Hong, Hsu, Liu, Chen and LeCun 2022, Decoupled Contrastive Learning (ECCV)"
    )
    formula: ClassVar[str] = "orbitcl.losses.dcl.dcl"

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        self.temperature = temperature

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return dcl(z_a, z_b, self.temperature, images=images)


class DCLWLoss(DCLLoss):
    """Weighted DCL (Yeh et al. 2022, DCLW): DCL whose positive term of image i is scaled by the
    negative von Mises-Fisher weight ``w_i = 2 - exp(s_i / sigma) / mean_j exp(s_j / sigma)``,
    ``s_i = z_a_i . z_b_i`` (unit vectors): positive pairs that are already close weigh less.

    The paper leaves open whether gradients flow through w; as in lightly's ``DCLWLoss`` (and the
    paper's reading of w as a weight), they do not: w is computed from detached embeddings. It
    equals lightly's ``DCLWLoss(temperature, sigma)`` in one process (float64, to rounding).
    Under DDP the mean over j is over the global batch, so the mean of the ranks' losses is the
    global loss; lightly's ranks weigh their pairs by their own local batch instead.
    """

    paper: ClassVar[str] = (
        "Yeh, Hong, Hsu, Liu, Chen and LeCun 2022, Decoupled Contrastive Learning (ECCV)"
    )
    formula: ClassVar[str] = "orbitcl.losses.dcl.von_mises_fisher_weights"

    def __init__(
        self, temperature: float = 0.1, sigma: float = 0.5, gather_distributed: bool = False
    ) -> None:
        super().__init__(temperature, gather_distributed)
        check_sigma(sigma)
        self.sigma = sigma

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        weights = von_mises_fisher_weights(z_a, z_b, self.sigma)  # (N,), all images
        return dcl(z_a, z_b, self.temperature, weights, images)

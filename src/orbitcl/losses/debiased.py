"""The debiased contrastive loss of Chuang et al. (NeurIPS 2020) as a module."""

import math
from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.checks.numbers import require_in
from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss
from orbitcl.losses.functional import check_temperature


def check_tau_plus(tau_plus: float) -> None:
    """Raise ValueError unless tau_plus is in [0, 1)."""
    require_in("tau_plus", tau_plus, 0, 1, "[)")


def debiased_info_nce(
    positive: Tensor, log_negatives: Tensor, n_negatives: int, temperature: float, tau_plus: float
) -> Tensor:
    """``mean_i -log(e^{s_i+} / (e^{s_i+} + Ng_i))``, with
    ``Ng_i = max((S_i - tau_plus M e^{s_i+}) / (1 - tau_plus), M e^{-1/t})``, from the positive
    logits ``s_i+ = sim(i, p(i)) / t`` (2n,) and ``log S_i`` (2n,), ``S_i`` the (estimated) sum
    of ``e^{s_ik}`` over the ``M = n_negatives`` negatives of each anchor.

    In log space, so that no ``e^{s}`` overflows at small temperatures. Where the debiased
    estimate is below the floor (or negative), ``Ng`` is the constant floor: no gradient flows
    through the estimate, as through the ``clamp`` of the authors' code.
    """
    log_m = math.log(n_negatives)
    log_floor = log_m - 1 / temperature  # log(M e^{-1/t}): every negative at cosine -1
    log_ng = log_negatives
    if tau_plus > 0:
        # r = tau_plus M e^{s+} / S, and S - tau_plus M e^{s+} = S (1 - r) is positive iff r < 1.
        log_r = math.log(tau_plus) + log_m + positive - log_negatives  # (2n,)
        r = log_r.clamp(max=0).exp()  # never overflows; where log_r > 0, no gradient
        valid = r < 1  # (2n,); log1p(-r) below gets r = 0 elsewhere, never log(0)
        debiased = log_negatives + torch.log1p(-torch.where(valid, r, 0)) - math.log1p(-tau_plus)
        log_ng = torch.where(valid, debiased, -math.inf)  # -inf: below any floor
    log_ng = log_ng.clamp(min=log_floor)  # (2n,)
    return (torch.logaddexp(positive, log_ng) - positive).mean()


def debiased(
    z_a: Tensor, z_b: Tensor, temperature: float, tau_plus: float, images: slice | None = None
) -> Tensor:
    """The debiased contrastive loss (``DebiasedContrastiveLoss``), the mean over the 2n anchors
    of ``images`` (default: all 2N), each with the M = 2N - 2 negatives ``k != i, p(i)``."""
    check_temperature(temperature)
    check_tau_plus(tau_plus)
    opening = kernels.dense_opening(
        z_a, z_b, images, "the debiased contrastive loss (at least one negative per anchor)"
    )
    logits = opening.gram.div_(temperature)  # (2n, 2N)
    positive = kernels.split_positive_(logits, opening)  # (2n,); neither i nor p(i) a negative
    n_negatives = len(opening.z) - 2
    return debiased_info_nce(positive, logits.logsumexp(1), n_negatives, temperature, tau_plus)


class DebiasedContrastiveLoss(ContrastiveLoss):
    """The debiased contrastive loss of Chuang, Robinson, Lin, Torralba and Jegelka, "Debiased
    Contrastive Learning" (NeurIPS 2020): NT-Xent whose negatives' sum is corrected for the
    false negatives, same-class images, that a batch of random images contains.

    ``L = mean_i -log(e^{s_i+} / (e^{s_i+} + Ng_i))``, with ``s_ik = sim(i, k) / t`` on
    ``z = normalize(cat([z_a, z_b]))``, ``s_i+ = s_{i p(i)}``, and
    ``Ng_i = max((sum_k e^{s_ik} - tau_plus M e^{s_i+}) / (1 - tau_plus), M e^{-1/t})``:
    the paper's estimator g times M, with its one positive sample (``e^{s_i+}``) standing for the
    positives of anchor i's class, whose prior probability is ``tau_plus``.

    Convention: the 2N anchors of NT-Xent; anchor i's negatives are the M = 2N - 2 others
    (``k != i, p(i)``), of both views, as in the authors' code (``chingyaoc/DCL``: ``N =
    batch_size * 2 - 2``, the floor ``N * e^{-1/t}`` as its "constrain" clamp). With
    ``tau_plus = 0`` it is NT-Xent (``NTXentLoss``). Where the floor holds, ``Ng`` is a
    constant: no gradient flows through the negatives (as through the authors' clamp).

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors are
    contrasted with the embeddings of all ranks (``orbitcl.losses.gather``; M = 2 W n - 2):
    the mean of the ranks' losses is the loss on the global batch.
    """

    paper: ClassVar[str] = (
        "Chuang, Robinson, Lin, Torralba and Jegelka 2020, Debiased Contrastive Learning (NeurIPS)"
    )
    formula: ClassVar[str] = "orbitcl.losses.debiased.debiased"

    def __init__(
        self, temperature: float = 0.5, tau_plus: float = 0.1, gather_distributed: bool = False
    ) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        check_tau_plus(tau_plus)
        self.temperature = temperature
        self.tau_plus = tau_plus

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return debiased(z_a, z_b, self.temperature, self.tau_plus, images)

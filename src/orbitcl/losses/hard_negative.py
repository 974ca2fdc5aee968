"""Hard-negative reweighting of Robinson et al. (ICLR 2021) as a module."""

import math
from typing import ClassVar

from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss
from orbitcl.losses.debiased import check_tau_plus, debiased_info_nce
from orbitcl.losses.functional import check_temperature
from orbitcl.losses.kernels.negatives import negative_mask


def check_beta(beta: float) -> None:
    """Raise ValueError unless beta >= 0."""
    if not beta >= 0:  # `not >=` also rejects NaN
        raise ValueError(f"beta={beta} is invalid: must be >= 0")


def hard_negative(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    beta: float,
    tau_plus: float,
    images: slice | None = None,
) -> Tensor:
    """The hard-negative loss (``HardNegativeLoss``), the mean over the 2n anchors of ``images``
    (default: all 2N), each with the M = 2N - 2 negatives ``k != i, p(i)``."""
    check_temperature(temperature)
    check_beta(beta)
    check_tau_plus(tau_plus)
    o = kernels.dense_opening(
        z_a, z_b, images, "the hard-negative loss (at least one negative per anchor)"
    )
    logits = o.gram.div_(temperature)  # (2n, 2N): s_ik
    positive = logits[o.rows, o.positive_cols]  # (2n,): s_i+
    # -inf off the negatives (zero gradient in the logsumexps), set after scaling: 0 * -inf is NaN.
    not_negative = ~negative_mask(o.cols, len(o.z))  # (2n, 2N)
    log_hard = (logits * (1 + beta)).masked_fill_(not_negative, -math.inf).logsumexp(1)  # (2n,)
    log_weights = (logits * beta).masked_fill_(not_negative, -math.inf).logsumexp(1)  # (2n,)
    n_negatives = len(o.z) - 2
    # log(M sum_k w_k e^{s_k}) with w_k = e^{beta s_k} / sum_j e^{beta s_j}.
    log_reweighted = log_hard - log_weights + math.log(n_negatives)
    return debiased_info_nce(positive, log_reweighted, n_negatives, temperature, tau_plus)


class HardNegativeLoss(ContrastiveLoss):
    """Hard-negative reweighting of Robinson, Chuang, Sra and Jegelka, "Contrastive Learning with
    Hard Negative Samples" (ICLR 2021): the debiased contrastive loss
    (``DebiasedContrastiveLoss``) with the negatives importance-weighted towards the hard ones,
    those most similar to the anchor.

    ``L = mean_i -log(e^{s_i+} / (e^{s_i+} + Ng_i))``, with ``s_ik = sim(i, k) / t`` on
    ``z = normalize(cat([z_a, z_b]))``, ``s_i+ = s_{i p(i)}``, and
    ``Ng_i = max((M sum_k w_ik e^{s_ik} - tau_plus M e^{s_i+}) / (1 - tau_plus), M e^{-1/t})``,
    ``w_ik = e^{beta s_ik} / sum_j e^{beta s_ij}`` over the negatives: the paper's estimate of
    the negatives' term under the hard-negative distribution ``q_beta``, whose concentration
    ``beta`` grows with the weight of the hard negatives.

    Convention: that of the authors' code (``joshr17/HCL``, ``estimator='hard'``): the 2N anchors
    of NT-Xent, each with the M = 2N - 2 negatives ``k != i, p(i)`` of both views; ``imp =
    e^{beta s}``, ``reweight_neg = sum(imp e^{s}) / mean(imp)``, the floor ``M e^{-1/t}`` as
    its clamp. As there, gradients flow through the weights ``w`` too. With ``beta = 0`` it is
    the debiased loss, and with ``tau_plus = 0`` as well, NT-Xent.

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors are
    contrasted with the embeddings of all ranks (``orbitcl.losses.gather``; M = 2 W n - 2):
    the mean of the ranks' losses is the loss on the global batch.
    """

    paper: ClassVar[str] = (
        "Robinson, Chuang, Sra and Jegelka 2021, Contrastive Learning with Hard Negative "
        "Samples (ICLR)"
    )
    formula: ClassVar[str] = "orbitcl.losses.hard_negative.hard_negative"

    def __init__(
        self,
        temperature: float = 0.5,
        beta: float = 1.0,
        tau_plus: float = 0.1,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        check_beta(beta)
        check_tau_plus(tau_plus)
        self.temperature = temperature
        self.beta = beta
        self.tau_plus = tau_plus

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return hard_negative(z_a, z_b, self.temperature, self.beta, self.tau_plus, images)

"""The supervised contrastive loss (SupCon) of Khosla et al. 2020, L_out form, as a module."""

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import ContrastiveLoss, Needs
from orbitcl.losses.functional import check_temperature


def supcon(
    z_a: Tensor, z_b: Tensor, labels: Tensor, temperature: float, images: slice | None = None
) -> Tensor:
    """SupCon, L_out: ``mean_i -1/|P(i)| sum_{p in P(i)} log softmax_{a != i}(sim(i, a) / tau)[p]``
    over the anchors of ``images`` (default: all 2N), ``P(i)`` being the other anchors with the
    label of i (its other view among them); ``labels`` (N,) are those of the images."""
    check_temperature(temperature)
    z = kernels.unit_anchors(z_a, z_b, 1, "SupCon")
    if labels.shape != (len(z_a),):
        raise ValueError(f"labels must have shape (N,) = ({len(z_a)},), got {tuple(labels.shape)}")
    z_rows, cols = kernels.anchor_rows(z, images)
    logits = kernels.gram_rows(z_rows, z).div_(temperature)  # (2n, 2N)
    rows = torch.arange(len(cols), device=z.device)
    # A(i) leaves out i itself: a -inf logit, which also has zero gradient.
    logits[rows, cols] = float("-inf")
    log_prob = logits - logits.logsumexp(1, keepdim=True)  # (2n, 2N)
    anchor_labels = labels.repeat(2)  # (2N,): the labels of [z_a; z_b]
    positive = anchor_labels[cols, None] == anchor_labels  # (2n, 2N)
    positive[rows, cols] = False
    # where(), not a product: the self entry is -inf, and -inf * 0 would be NaN.
    summed = torch.where(positive, log_prob, 0.0).sum(1)  # (2n,)
    return -(summed / positive.sum(1)).mean()


class SupConLoss(ContrastiveLoss):
    """Supervised contrastive loss, L_out (Khosla et al., "Supervised Contrastive Learning",
    NeurIPS 2020, eq. 2), over the 2N views ``z = normalize(cat([z_a, z_b]))``:

    ``L = mean_i -1/|P(i)| sum_{p in P(i)} log(exp(z_i . z_p / tau) / sum_{a != i} exp(z_i . z_a /
    tau))``, ``P(i) = {p != i : y_p = y_i}``, which holds at least i's other view.

    It equals pytorch-metric-learning's ``SupConLoss(temperature)`` on ``torch.cat([z_a, z_b])``
    with ``labels.repeat(2)`` (float64, to rounding), with two differences at the edges: pml
    averages over the anchors whose loss is > 0 only (``AvgNonZeroReducer``), where this mean is
    over all 2N (they differ only where an anchor's loss rounds to exactly 0), and pml returns 0
    for a batch of one class (no negatives), where this is the formula's value. Khosla et al.'s
    reference code also multiplies the loss by ``tau / base_temperature`` (0.07 by default); this
    is the paper's formula, without that factor.

    ``forward(z_a, z_b, labels)`` (``needs.labels``: the module passes the batch's labels).
    Under DDP (``gather_distributed``) the labels are gathered with the views and each rank takes
    the mean over its own anchors: the mean of the ranks' losses is the global loss.
    """

    needs = Needs(labels=True)

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        self.temperature = temperature

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None, labels: Tensor) -> Tensor:
        return supcon(z_a, z_b, labels, self.temperature, images)

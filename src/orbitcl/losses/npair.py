"""N-pair loss: each anchor's positive against the other pairs' positives, a softmax over inner
products of un-normalised embeddings, with an L2 penalty on them.

Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS 2016.
"""

from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.checks.numbers import require_number
from orbitcl.losses.base import ContrastiveLoss, Needs
from orbitcl.losses.vicreg import at_least_float32


def npair(
    anchors: Tensor, positives: Tensor, l2_weight: float = 0.002, labels: Tensor | None = None
) -> Tensor:
    """The multi-class N-pair loss with its L2 penalty, on embeddings ``f`` = ``anchors`` and
    ``f+`` = ``positives`` (N, d), row n of each from image n:

    ``mean_i log(1 + sum_{j != i} exp(f_i . f+_j - f_i . f+_i))
    + (l2_weight / 4) (mean_i ||f_i||^2 + mean_i ||f+_i||^2)``.

    The first term is the cross-entropy of the logits ``f_i . f+_j`` with target i. With
    ``labels`` (N,), the class-label form: the target of row i is spread evenly over the
    positives of its class, ``-mean_{j: y_j = y_i} f_i . f+_j + logsumexp_j f_i . f+_j``, which
    is the first form when the N labels are distinct (Sohn's batches: one pair per class).
    No temperature, no normalisation (the paper's; hence the penalty). float32 at least.
    """
    if anchors.ndim != 2 or anchors.shape != positives.shape or len(anchors) < 2:
        raise ValueError(
            "N-pair needs anchors and positives of the same shape (N, d) with N >= 2, got "
            f"{tuple(anchors.shape)} and {tuple(positives.shape)}"
        )
    f, f_pos = at_least_float32(anchors, positives)
    logits = f @ f_pos.T  # (N, N): f_i . f+_j
    if labels is None:
        positive = logits.diagonal()  # (N,)
    else:
        same = (labels[:, None] == labels[None, :]).to(logits.dtype)  # (N, N), diagonal 1
        positive = (same * logits).sum(1) / same.sum(1)  # (N,): the mean over the class
    cross_entropy = (torch.logsumexp(logits, dim=1) - positive).mean()
    penalty = f.square().sum(1).mean() + f_pos.square().sum(1).mean()
    return cross_entropy + l2_weight / 4 * penalty


class NPairLoss(ContrastiveLoss):
    """Multi-class N-pair loss (Sohn, NeurIPS 2016) on the pairs of views: view a's embeddings
    are the anchors, view b's the positives, the other images' positives the negatives.

    The embeddings are the projector outputs, un-normalised, as in the paper; the L2 penalty
    keeps their norms (and so the softmax's sharpness) in check. Its weight ``l2_weight`` and
    the factor 1/4 are those of TensorFlow's ``npairs_loss`` (``0.25 * reg_lambda`` times the
    sum of the two views' mean squared norms, ``reg_lambda = 0.002`` by default; Paddle's
    ``npair_loss`` has the same ``l2_reg = 0.002``). pytorch-metric-learning's ``NPairsLoss``
    has no penalty of its own (its ``embedding_regularizer`` adds one, with no paper value).
    One-sided like the paper's (view a anchors). Under DDP (``gather_distributed``) every rank
    computes the global batch's loss on the gathered views.
    """

    paper: ClassVar[str] = (
        "Sohn 2016, Improved Deep Metric Learning with Multi-class N-pair Loss Objective"
    )
    formula: ClassVar[str] = "orbitcl.losses.npair.npair"

    def __init__(self, l2_weight: float = 0.002, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        require_number("l2_weight", l2_weight, 0)
        self.l2_weight = l2_weight

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None, *labels: Tensor) -> Tensor:
        # The global batch's loss on every rank (gathered views).
        return npair(z_a, z_b, self.l2_weight, *labels)


class NPairClassLoss(NPairLoss):
    """N-pair loss, class-label form (``npair`` with labels): an anchor's positives are the
    other view's images of its class, the target spread evenly over them; with one image per
    class in the batch it is ``NPairLoss``."""

    needs = Needs(labels=True)

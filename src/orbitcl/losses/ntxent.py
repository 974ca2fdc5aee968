"""NT-Xent, the loss of SimCLR (Chen et al. 2020), as a module."""

from typing import ClassVar

from torch import Tensor

from orbitcl.losses import functional
from orbitcl.losses.base import InfoNCETypeLoss


class NTXentLoss(InfoNCETypeLoss):
    """NT-Xent of SimCLR (Chen, Kornblith, Norouzi and Hinton, ICML 2020), mean over 2N anchors.

    ``L = mean_i [-sim(i, p(i)) / tau + logsumexp_{k != i} sim(i, k) / tau]`` on
    ``z = normalize(cat([z_a, z_b]))``, anchor i's positive being ``p(i) = i +- N``.

    It equals lightly's ``NTXentLoss`` (no memory bank, one process). Lightly normalises both
    views and builds, for the anchors ``a_i`` of view 0, the rows
    ``[a_i . b_k for all k] ++ [a_i . a_k for k != i]`` (divided by tau), with target the
    column of ``b_i``; for the anchors ``b_i`` of view 1, ``[b_i . a_k for all k] ++
    [b_i . b_k for k != i]`` with target ``a_i``; and takes the cross-entropy averaged over the
    2N rows. Each row holds exactly the logits ``sim(i, k) / tau`` for ``k != i`` of our anchor
    i, in another column order, and its target is ``p(i)``; cross-entropy
    ``-x_target + logsumexp(x)`` does not depend on the column order, so the two are equal term
    by term. (SimCLR's reference code masks ``k = i`` with a logit of -1e9 instead of dropping
    it, which changes the logsumexp by less than float precision.)

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors are
    contrasted with the embeddings of all ranks, gathered with gradients: the mean of the ranks'
    losses is the loss on the global batch (``orbitcl.losses.gather``). Every rank must pass the
    same N. ``ContrastiveModule`` switches it on when the world size is > 1.

    ``negatives`` chooses the negatives in each anchor's softmax (``kernels.negatives``): ``all``
    (the above, SimCLR), ``cross_view`` (the other view's images only: InfoNCE/CLIP) or
    ``within_view`` (the anchor's own view's images: DHEL).
    """

    paper: ClassVar[str] = (
        "Chen, Kornblith, Norouzi and Hinton 2020, A Simple Framework for Contrastive Learning "
        "of Visual Representations (ICML)"
    )
    formula: ClassVar[str] = "orbitcl.losses.functional.ntxent"

    def __init__(
        self, temperature: float = 0.5, gather_distributed: bool = False, negatives: str = "all"
    ) -> None:
        super().__init__(temperature, negatives, gather_distributed)

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return functional.ntxent(z_a, z_b, self.temperature, images, self.negatives)

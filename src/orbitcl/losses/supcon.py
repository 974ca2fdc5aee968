"""The supervised contrastive loss (SupCon) of Khosla et al. 2020, L_out form, and its soft
variant, as weightings of the weighted InfoNCE core (``losses.weighted``)."""

from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.losses.base import Needs
from orbitcl.losses.weight_forms import ClassWeights, class_indices
from orbitcl.losses.weighted import WeightedInfoNCELoss, check_class_labels, weighted_info_nce


def supcon_class_weights(
    labels: Tensor, num_classes: int | None = None, dtype: torch.dtype = torch.float64
) -> ClassWeights:
    """``W_ij = 1[y_j = y_i] / |P(i)|`` over the 2N anchors, ``P(i)`` the same-class anchors other
    than i (it always holds i's other view); labels (N,) of the images: affinity I, in ``dtype``.
    ``num_classes``: the labels are class indices in ``[0, num_classes)`` (no host sync; see
    ``weight_forms.class_indices``), else any integers."""
    classes, n_classes = class_indices(labels, num_classes)
    return ClassWeights(classes, torch.eye(n_classes, dtype=dtype, device=labels.device))


def soft_supcon_class_weights(
    labels: Tensor,
    epsilon: float,
    num_classes: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> ClassWeights:
    """``W_ij`` proportional to 1 for a same-class j, to ``epsilon`` for another class's, rows
    normalised, ``W_ii = 0`` (geometry.md): affinity ``epsilon + (1 - epsilon) I``, in ``dtype``
    (``num_classes`` as in ``supcon_class_weights``)."""
    classes, n_classes = class_indices(labels, num_classes)
    eye = torch.eye(n_classes, dtype=dtype, device=labels.device)
    return ClassWeights(classes, eye.mul_(1 - epsilon).add_(epsilon))


def supcon_weights(labels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """SupCon's (2N, 2N) weights (``supcon_class_weights``)."""
    return supcon_class_weights(labels).dense(dtype)


def soft_supcon_weights(
    labels: Tensor, epsilon: float, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Soft SupCon's (2N, 2N) weights (``soft_supcon_class_weights``)."""
    return soft_supcon_class_weights(labels, epsilon).dense(dtype)


def check_num_classes(num_classes: int | None) -> int | None:
    """``num_classes``, None or an int >= 1; raise ValueError otherwise."""
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(
            f"num_classes={num_classes!r} is invalid: must be null (labels of any integers) or "
            "the number of classes, an int >= 1"
        )
    return num_classes


def check_epsilon(epsilon: float) -> None:
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon={epsilon} is invalid: must be in (0, 1)")


def supcon(
    z_a: Tensor, z_b: Tensor, labels: Tensor, temperature: float, images: slice | None = None
) -> Tensor:
    """SupCon, L_out: ``mean_i -1/|P(i)| sum_{p in P(i)} log softmax_{a != i}(sim(i, a) / tau)[p]``
    over the anchors of ``images`` (default: all 2N), ``P(i)`` being the other anchors with the
    label of i (its other view among them); ``labels`` (N,) are those of the images."""
    check_class_labels(labels, len(z_a), "SupCon")
    weights = supcon_class_weights(labels.to(z_a.device))
    return weighted_info_nce(z_a, z_b, weights, temperature, images, validate=False)


class SupConLoss(WeightedInfoNCELoss):
    """Supervised contrastive loss, L_out (Khosla et al., "Supervised Contrastive Learning",
    NeurIPS 2020, eq. 2), over the 2N views ``z = normalize(cat([z_a, z_b]))``:

    ``L = mean_i -1/|P(i)| sum_{p in P(i)} log(exp(z_i . z_p / tau) / sum_{a != i} exp(z_i . z_a /
    tau))``, ``P(i) = {p != i : y_p = y_i}``, which holds at least i's other view: the weighted
    InfoNCE of ``supcon_weights``. With all-distinct labels it is NT-Xent.

    It equals pytorch-metric-learning's ``SupConLoss(temperature)`` on ``torch.cat([z_a, z_b])``
    with ``labels.repeat(2)`` (float64, to rounding), with two differences at the edges: pml
    averages over the anchors whose loss is > 0 only (``AvgNonZeroReducer``), where this mean is
    over all 2N (they differ only where an anchor's loss rounds to exactly 0), and pml returns 0
    for a batch of one class (no negatives), where this is the formula's value. Khosla et al.'s
    reference code also multiplies the loss by ``tau / base_temperature`` (0.07 by default); this
    is the paper's formula, without that factor.

    ``forward(z_a, z_b, labels)`` (``needs.labels``: the module passes the batch's labels).
    ``num_classes`` (``needs.class_count``; ``ContrastiveModule`` sets it from the datamodule when
    training starts) says the labels are class indices in ``[0, num_classes)``: the weights are
    then built without reading anything on the host. Without it any integers are labels, at the
    cost of a ``torch.unique`` (a device sync) per step.
    Under DDP (``gather_distributed``) the labels are gathered with the views and each rank takes
    the mean over its own anchors: the mean of the ranks' losses is the global loss.
    """

    paper: ClassVar[str] = "Khosla et al. 2020, Supervised Contrastive Learning (NeurIPS)"
    formula: ClassVar[str] = "orbitcl.losses.supcon.supcon"

    needs = Needs(labels=True, class_count=True)

    def __init__(
        self,
        temperature: float = 0.1,
        gather_distributed: bool = False,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(temperature, gather_distributed)
        self.num_classes = check_num_classes(num_classes)

    def kernel_weights(self, labels: Tensor, dtype: torch.dtype) -> ClassWeights:
        return supcon_class_weights(labels, self.num_classes, dtype)


class SoftSupConLoss(WeightedInfoNCELoss):
    """Soft SupCon (geometry.md): SupCon whose other-class anchors keep a weight ``epsilon`` (in
    (0, 1), default 0.1) relative to the same-class ones, rows normalised. Its optimum reaches
    ``P = W``, with an intra- minus inter-class cosine gap of ``-tau ln(epsilon)`` whatever the
    class sizes, where SupCon's geometry bends with them. As ``epsilon -> 0`` it is SupCon.
    ``num_classes`` as in ``SupConLoss``."""

    paper: ClassVar[str] = (
        "Vock, Duchesnay and Dufumier 2026, A Unified Geometric Framework for Weighted "
        "Contrastive Learning (arXiv:2605.13943)"
    )
    formula: ClassVar[str] = "orbitcl.losses.supcon.soft_supcon_class_weights"

    needs = Needs(labels=True, class_count=True)

    def __init__(
        self,
        temperature: float = 0.1,
        epsilon: float = 0.1,
        gather_distributed: bool = False,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(temperature, gather_distributed)
        check_epsilon(epsilon)
        self.epsilon = epsilon
        self.num_classes = check_num_classes(num_classes)

    def kernel_weights(self, labels: Tensor, dtype: torch.dtype) -> ClassWeights:
        return soft_supcon_class_weights(labels, self.epsilon, self.num_classes, dtype)

"""The base of orbitcl's losses: what a loss declares it needs from training (``Needs``), and
for two-view losses, gathering under DDP, then the loss's own formula."""

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from orbitcl.losses import kernels
from orbitcl.losses.functional import check_t_min, check_temperature
from orbitcl.losses.gather import gather_views
from orbitcl.parallel import collectives

# How a momentum (EMA) encoder's rate moves over training (orbitcl.training.momentum):
# constant (MoCo's), or BYOL's cosine from the base rate to 1.
MOMENTUM_SCHEDULES = ("constant", "cosine")


def check_momentum_schedule(momentum_schedule: str) -> None:
    if momentum_schedule not in MOMENTUM_SCHEDULES:
        raise ValueError(
            f"momentum_schedule={momentum_schedule!r} is invalid: must be one of "
            f"{', '.join(MOMENTUM_SCHEDULES)}"
        )


@dataclass(frozen=True)
class Needs:
    """What a loss needs from the training step beyond two views of projections (N, d).

    ``orbitcl.training.objectives`` reads it once, when the module is built, and serves it.
    """

    labels: bool = False  # forward(z_a, z_b, labels): the images' labels, class indices (N,)
    continuous_labels: bool = False  # with labels: continuous ones, (N,) or (N, m) floats
    # set_class_similarity(S_c) before training, S_c (C, C) the cosines between the mean
    # training images of the classes (X-CLR's class_similarity="class_means")
    class_similarity: bool = False
    # forward(z_a, z_b, k_a, k_b): the keys of the same views from EMA copies of encoder and
    # projector, at the loss's `momentum` following its `momentum_schedule` (constant if it has
    # none)
    momentum_keys: bool = False
    key_queue: bool = False  # with momentum_keys: enqueue(keys) after a finite step (MoCo)
    # forward(p_a, p_b, t_a, t_b): a predictor's outputs of the projections of each view
    # (built from `model.predictor`) and the targets: the momentum keys with momentum_keys
    # (BYOL), else the projections themselves (SimSiam)
    predictor: bool = False
    train_set_size: bool = False  # the attribute, set to the number of training images
    # the attribute `num_classes`, set to the datamodule's class count when training starts if
    # it is None: the labels are then class indices in [0, num_classes), read without a sync
    class_count: bool = False


class Loss(nn.Module):
    """A loss of orbitcl: it declares ``needs``, and under DDP ``gather_distributed`` (switched
    on by the module when the world size is > 1) makes it see the embeddings of all ranks."""

    needs = Needs()
    # Whether it contrasts each anchor's positive with negatives: what ORL's tension weighs, so
    # the tension diagnostics (callbacks.tension, the spectrum's class tension) measure what ORL
    # would weight in its place; a loss without negatives (SimSiam, BYOL, VICReg, Barlow Twins)
    # has none for it to weigh, and they leave it out.
    contrasts_negatives: ClassVar[bool] = False

    def __init__(self, gather_distributed: bool = False) -> None:
        super().__init__()
        self.gather_distributed = gather_distributed

    def candidates(self, n_images: int) -> int | None:
        """For an InfoNCE-type loss, K + 1: the positive and the K negatives in each anchor's
        softmax on a (global) batch of ``n_images`` images, which makes ``log(K + 1) - loss`` a
        lower bound on the views' mutual information (``docs/geometry.md``, "Mutual
        information"); None for the other losses."""
        return None


class ContrastiveLoss(Loss):
    """A loss of two views ``z_a``, ``z_b`` (N, d), row n of each from image n.

    Subclasses implement ``compute(z_a, z_b, images)`` (and take ``labels`` too when
    ``needs.labels``): the mean loss over the anchors of ``images``, a slice of ``range(N)`` or
    ``None`` for all, each contrasted with all N images (see ``orbitcl.losses.functional``).

    With ``gather_distributed`` and a process group of W > 1 (DDP), ``forward`` gathers the views
    of all ranks with gradients and passes this rank's images: the mean of the ranks' losses is
    the loss on the global batch (``orbitcl.losses.gather``). Every rank must pass the same N.
    ``ContrastiveModule`` switches it on when the world size is > 1.
    """

    contrasts_negatives: ClassVar[bool] = True  # the other images of the batch

    def forward(self, z_a: Tensor, z_b: Tensor, labels: Tensor | None = None) -> Tensor:
        """The loss (a scalar) for projector outputs ``z_a``, ``z_b`` of shape (N, d)."""
        images = None
        if self.gather_distributed:  # this rank's anchors against the global batch
            z_a, z_b, images = gather_views(z_a, z_b)
            if labels is not None:
                labels = collectives.gather(labels)  # (W n,): labels carry no gradient
        if not self.needs.labels:
            return self.compute(z_a, z_b, images)
        if labels is None:
            raise ValueError(f"{self.__class__.__name__} needs the labels of the images")
        return self.compute(z_a, z_b, images, labels)

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None, *labels: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "training"}
        return ", ".join(f"{k}={v}" for k, v in fields.items())


class InfoNCETypeLoss(ContrastiveLoss):
    """A two-view loss with an InfoNCE softmax per anchor at ``temperature``: the positive and
    the ``negatives`` that ``kernels.negatives`` chooses (``all``, ``cross_view``,
    ``within_view``), which also gives its K + 1 ``candidates``."""

    def __init__(
        self, temperature: float, negatives: str = "all", gather_distributed: bool = False
    ) -> None:
        super().__init__(gather_distributed)
        check_temperature(temperature)
        kernels.check_negatives(negatives)
        self.temperature = temperature
        self.negatives = negatives

    def candidates(self, n_images: int) -> int:
        return kernels.candidates(self.negatives, n_images)


class TensionLoss(InfoNCETypeLoss):
    """An InfoNCE-type loss that weighs its negatives by ORL's tension, clamped below at
    ``t_min`` (ORL and its controls)."""

    def __init__(
        self,
        temperature: float,
        t_min: float,
        negatives: str = "all",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(temperature, negatives, gather_distributed)
        check_t_min(t_min)
        self.t_min = t_min

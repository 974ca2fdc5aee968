"""X-CLR (Sobal et al. 2024): InfoNCE against soft targets from a similarity graph between
samples, a weighting of the weighted InfoNCE core (``losses.weighted``, geometry.md)."""

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from orbitcl.losses.base import Needs
from orbitcl.losses.weight_forms import ClassWeights
from orbitcl.losses.weighted import WeightedInfoNCELoss

CLASS_MEANS = "class_means"  # S_c from the training split's mean class images (geometry.md)


def xclr_class_weights(
    labels: Tensor,
    class_similarity: Tensor,
    target_temperature: float,
    dtype: torch.dtype = torch.float64,
) -> ClassWeights:
    """``W_ij = softmax_{j != i}(S_c[y_i, y_j] / tau_s)`` over the 2N anchors (the self entry
    masked), ``labels`` (N,) class indices into the C x C ``class_similarity``: affinity
    ``exp(S_c / tau_s)``, each row shifted by its largest entry over the classes in the batch (a
    softmax does not see the shift; the largest present term is 1, so no row's sum underflows).
    Absent classes' columns are 0: they weigh no anchor, and exp of them may overflow. In
    ``dtype``: the anchors' (float32 on a GPU, where float64 is slow)."""
    logits = class_similarity.to(labels.device, dtype) / target_temperature  # (C, C)
    present = torch.zeros(len(logits), dtype=torch.bool, device=labels.device)
    present[labels] = True
    top = logits.masked_fill(~present, float("-inf")).amax(1, keepdim=True)
    return ClassWeights(labels, logits.sub_(top).exp_().masked_fill_(~present, 0.0))


def xclr_weights(
    labels: Tensor,
    class_similarity: Tensor,
    target_temperature: float,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """X-CLR's (2N, 2N) weights (``xclr_class_weights``)."""
    return xclr_class_weights(labels, class_similarity, target_temperature).dense(dtype)


def load_class_similarity(class_similarity) -> Tensor:
    """A C x C matrix from a nested list or the path of a ``.npy`` file (float64)."""
    if isinstance(class_similarity, str | Path):
        path = Path(class_similarity).expanduser()
        if path.suffix != ".npy" or not path.is_file():
            raise ValueError(
                f"class_similarity={class_similarity!r} is invalid: must be {CLASS_MEANS!r}, a "
                "C x C matrix (a list of lists) or the path of an existing .npy file"
            )
        matrix = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        matrix = torch.as_tensor(class_similarity, dtype=torch.float64)
    matrix = matrix.to(torch.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not torch.isfinite(matrix).all():
        raise ValueError(
            f"class_similarity is invalid: must be a finite C x C matrix, got shape "
            f"{tuple(matrix.shape)}"
        )
    return matrix


def check_label_range(labels: Tensor, n_classes: int) -> None:
    """Labels (N,) must lie in ``[0, n_classes)``: on the CPU a ValueError naming the range
    found; on a GPU a device-side assert, which does not wait for the device (reading the range
    on the host would, at every step)."""
    if not len(labels):
        return
    low, high = labels.aminmax()
    inside = (low >= 0) & (high < n_classes)
    message = (
        f"labels must lie in [0, {n_classes}) for a {n_classes} x {n_classes} class_similarity"
    )
    if labels.device.type != "cpu":
        torch._assert_async(inside, message)
    # Read as a NumPy view: on the CPU there is no device to wait for.
    elif not inside.numpy():
        raise ValueError(f"{message}, got [{low.numpy()}, {high.numpy()}]")


class XCLRLoss(WeightedInfoNCELoss):
    """X-CLR: each anchor's targets are the softmax, at ``target_temperature`` tau_s, of its
    similarity to the other anchors, ``S_ij = S_c[y_i, y_j]`` from a C x C ``class_similarity``
    (a list of lists or a ``.npy`` path); no gradient flows through the targets. Its optimum Gram
    matrix is ``(tau / tau_s) S + (1 - tau / tau_s) I`` up to a shift, where that is PSD.

    ``class_similarity="class_means"`` (geometry.md's offline default) is the cosine between the
    mean training images of two classes, raw pixels: it is handed over before training
    (``set_class_similarity``; ``needs.class_similarity``), by ``orbitcl.train`` from the
    training split."""

    paper: ClassVar[str] = (
        "Sobal et al. 2024, X-Sample Contrastive Loss: Improving Contrastive Learning with "
        "Sample Similarity Graphs"
    )
    formula: ClassVar[str] = "orbitcl.losses.xclr.xclr_class_weights"

    def __init__(
        self,
        temperature: float = 0.1,
        target_temperature: float = 0.1,
        class_similarity=None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(temperature, gather_distributed)
        if not target_temperature > 0:
            raise ValueError(f"target_temperature={target_temperature} is invalid: must be > 0")
        if class_similarity is None:
            raise ValueError(
                "class_similarity=None is invalid: X-CLR needs a C x C class similarity "
                f"({CLASS_MEANS!r}, a list of lists or the path of a .npy file)"
            )
        self.target_temperature = target_temperature
        if isinstance(class_similarity, str) and class_similarity == CLASS_MEANS:
            self.needs = Needs(labels=True, class_similarity=True)
            self.register_buffer("class_similarity", None)  # set_class_similarity fills it
        else:
            self.register_buffer("class_similarity", load_class_similarity(class_similarity))

    def _apply(self, fn, recurse=True):
        # S_c is float64 on the CPU, where the float64 references read it; on an accelerator it
        # is kept in float32, the anchors' dtype there (no float64 on the device).
        super()._apply(fn, recurse)
        similarity = self.class_similarity
        off_cpu = similarity is not None and similarity.device.type != "cpu"
        if off_cpu and similarity.dtype == torch.float64:
            self.class_similarity = similarity.float()
        return self

    def set_class_similarity(self, class_similarity) -> None:
        """Sets ``S_c`` (C, C) (anything ``load_class_similarity`` reads), on the device of the
        buffer it replaces, if any."""
        matrix = load_class_similarity(class_similarity)
        if self.class_similarity is not None and self.class_similarity.device.type != "cpu":
            matrix = matrix.to(self.class_similarity.device, torch.float32)  # as in _apply
        self.class_similarity = matrix

    def kernel_weights(self, labels: Tensor, dtype: torch.dtype) -> ClassWeights:
        if self.class_similarity is None:
            raise ValueError(
                f"class_similarity={CLASS_MEANS!r} has not been computed: call "
                "set_class_similarity(S_c) first (orbitcl.train does, from the training split)"
            )
        check_label_range(labels, len(self.class_similarity))
        return xclr_class_weights(labels, self.class_similarity, self.target_temperature, dtype)

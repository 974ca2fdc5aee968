"""Class-imbalanced training subsets: how many images of each class to keep, and which.

The long-tailed profile is CIFAR-10-LT's (Cao et al., "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss", NeurIPS 2019): class c of C keeps
`n_c = floor(n_max * ratio^(-c / (C - 1)))` images, `n_max` the largest class's count in the
split, so class 0 is the head and class C - 1 the tail with `n_max / ratio`. A split whose
classes are not all of size `n_max` (MNIST's 5421 to 6742) keeps at most what a class has.

The images kept are chosen by one permutation of the split seeded with `seed`: each class keeps
its first `n_c` images in that order. The same seed gives the same subset, and for one seed the
subsets of different ratios are nested (a class's images at ratio 10 are among those at 5).
"""

from collections.abc import Sequence
from numbers import Integral, Real

import torch
from torch import Tensor


def check_imbalance(imbalance_ratio: object, class_counts: object) -> list[int] | None:
    """Raises ValueError naming the argument unless `imbalance_ratio` is a number >= 1 and
    `class_counts` None or a list of integers >= 1, and at most one of them asks for a subset;
    returns `class_counts` as a list (or None)."""
    ratio_ok = isinstance(imbalance_ratio, Real) and not isinstance(imbalance_ratio, bool)
    if not ratio_ok or not 1 <= imbalance_ratio < float("inf"):
        raise ValueError(
            f"imbalance_ratio={imbalance_ratio!r} is invalid: must be a number >= 1 (1: the "
            "split as it is; r: the largest class has r times the images of the smallest)"
        )
    if class_counts is None:
        return None
    counts = list(class_counts) if isinstance(class_counts, Sequence | Tensor) else None
    if not counts or not all(
        isinstance(n, Integral) and not isinstance(n, bool) and n >= 1 for n in counts
    ):
        raise ValueError(
            f"class_counts={_shown(class_counts)} is invalid: must be a list of integers >= 1, "
            "the training images to keep of each class"
        )
    if imbalance_ratio != 1:
        raise ValueError(
            f"class_counts={_shown(counts)} and imbalance_ratio={imbalance_ratio} are exclusive: "
            "set one of them (imbalance_ratio=1 with class_counts)"
        )
    return [int(n) for n in counts]


def long_tailed_counts(available: Sequence[int], ratio: float) -> list[int]:
    """Images to keep per class: `floor(n_max * (1 / ratio)^(c / (C - 1)))` for class c (Cao et
    al.'s expression, so its float rounding too), at least 1 and at most `available[c]`."""
    n_max, n_classes = max(available), len(available)
    return [
        min(n, max(1, int(n_max * (1 / ratio) ** (c / (n_classes - 1)))))
        for c, n in enumerate(available)
    ]


def check_counts_available(counts: Sequence[int], available: Sequence[int]) -> None:
    """Raises ValueError (naming `class_counts`) unless there is one count per class, each no
    more than the class has."""
    if len(counts) != len(available):
        raise ValueError(
            f"class_counts={_shown(counts)} is invalid: must hold one count per class, "
            f"{len(available)} (the training split has {list(available)})"
        )
    if over := [c for c, (n, m) in enumerate(zip(counts, available, strict=True)) if n > m]:
        raise ValueError(
            f"class_counts={_shown(counts)} is invalid: class {over[0]} asks for "
            f"{counts[over[0]]} images and has {available[over[0]]}; each count must be at most "
            f"the class's, {list(available)}"
        )


def subsample_classes(labels: Tensor, counts: Sequence[int], seed: int) -> Tensor:
    """The sorted indices (int64) of `counts[c]` images of each class c of `labels` (N,): the
    first of each class in a permutation of the split seeded with `seed`."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    ranked = labels[order]
    kept = [order[ranked == c][:n] for c, n in enumerate(counts)]
    return torch.cat(kept).sort().values


def _shown(counts: object) -> str:
    return str(list(counts)) if isinstance(counts, Sequence | Tensor) else repr(counts)

"""Class-imbalanced training subsets (orbitcl.data.imbalance and the datamodules'
`imbalance_ratio` / `class_counts`): the long-tailed counts against Cao et al.'s published
CIFAR-10-LT, the seeded choice of images, and every bad value named."""

import os
from pathlib import Path

import pytest
import torch

from orbitcl.data import DigitsDataModule, MNISTDataModule, load_digits, load_mnist
from orbitcl.data.imbalance import check_imbalance, long_tailed_counts, subsample_classes

DATA_DIR = Path(os.environ["ORBITCL_DATA_DIR"])
needs_mnist = pytest.mark.skipif(
    not (DATA_DIR / "MNIST" / "raw").is_dir(), reason=f"no MNIST in {DATA_DIR}"
)


def test_long_tailed_counts_are_cifar10_lt():
    # CIFAR-10-LT (Cao et al. 2019; 5000 images per class): 12,406 images at ratio 100 with
    # these counts, 20,431 at ratio 10.
    assert long_tailed_counts([5000] * 10, 100) == [
        5000,
        2997,
        1796,
        1077,
        645,
        387,
        232,
        139,
        83,
        50,
    ]
    assert sum(long_tailed_counts([5000] * 10, 10)) == 20431
    assert long_tailed_counts([5000] * 10, 1) == [5000] * 10


def test_long_tailed_counts_keep_at_least_one_and_at_most_what_a_class_has():
    # n_max is the largest class (10); class 0 has 5, so keeps its 5, not 10.
    assert long_tailed_counts([5, 10, 10], 1) == [5, 10, 10]
    assert long_tailed_counts([10, 10, 10], 1000) == [10, 1, 1]  # floor(10 * 0.001) = 0 -> 1


def test_subsample_is_seeded_per_class_and_nested():
    labels = torch.arange(5).repeat(40)[
        torch.randperm(200, generator=torch.Generator().manual_seed(1))
    ]
    kept = subsample_classes(labels, [40, 20, 10, 5, 1], seed=3)
    assert torch.equal(kept, kept.unique())  # sorted, no repeats
    assert labels[kept].bincount().tolist() == [40, 20, 10, 5, 1]
    assert torch.equal(kept, subsample_classes(labels, [40, 20, 10, 5, 1], seed=3))
    other = subsample_classes(labels, [40, 20, 10, 5, 1], seed=4)
    assert not torch.equal(kept, other) and labels[other].bincount().tolist() == [40, 20, 10, 5, 1]
    # For one seed, a smaller count keeps a subset of a larger one's images.
    fewer = subsample_classes(labels, [20, 10, 5, 2, 1], seed=3)
    assert set(fewer.tolist()) <= set(kept.tolist())


@pytest.mark.parametrize(
    "ratio,counts,message",
    [
        (0.5, None, r"^imbalance_ratio=0.5 is invalid: must be a number >= 1"),
        (True, None, r"^imbalance_ratio=True is invalid"),
        ("10", None, r"^imbalance_ratio='10' is invalid"),
        (float("nan"), None, r"^imbalance_ratio=nan is invalid"),
        (1, [3, -1], r"^class_counts=\[3, -1\] is invalid: must be a list of integers >= 1"),
        (1, [3, 0], r"^class_counts=\[3, 0\] is invalid"),
        (1, [3, 1.5], r"^class_counts=\[3, 1.5\] is invalid"),
        (1, [], r"^class_counts=\[\] is invalid"),
        (1, 7, r"^class_counts=7 is invalid"),
        (10, [3, 2], r"^class_counts=\[3, 2\] and imbalance_ratio=10 are exclusive"),
    ],
)
def test_bad_values_name_the_field(ratio, counts, message):
    with pytest.raises(ValueError, match=message):
        check_imbalance(ratio, counts)
    with pytest.raises(ValueError, match=message):  # and the datamodules check them when built
        DigitsDataModule(imbalance_ratio=ratio, class_counts=counts)


def digits(**kwargs) -> DigitsDataModule:
    datamodule = DigitsDataModule(num_workers=0, batch_size=16, **kwargs)
    datamodule.setup("fit")
    return datamodule


def test_datamodule_trains_on_the_subset_and_keeps_the_test_split():
    available = load_digits(train=True)[1].bincount().tolist()
    datamodule = digits(imbalance_ratio=10, subset_seed=5)
    counts = long_tailed_counts(available, 10)
    assert datamodule.train_class_counts() == counts and counts[0] > counts[-1]
    images, labels = datamodule.training_split
    bank, queries = datamodule.val_dataloader()
    assert torch.equal(bank.dataset.labels, labels) and torch.equal(bank.dataset.images, images)
    assert torch.equal(queries.dataset.labels, load_digits(train=False)[1])  # whole
    again = digits(imbalance_ratio=10, subset_seed=5).training_split  # the same seed: same subset
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)
    other = digits(imbalance_ratio=10, subset_seed=6).training_split
    assert not torch.equal(other[0], images)
    assert digits(class_counts=[20] * 10).train_class_counts() == [20] * 10
    balanced = digits()  # ratio 1: the split as it is, nothing drawn
    assert torch.equal(balanced.training_split[0], load_digits(train=True)[0])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"class_counts": [5] * 9},
            r"^class_counts=\[5, 5, .*\] is invalid: must hold one count per class, 10",
        ),
        (
            {"class_counts": [500] + [5] * 9},
            r"^class_counts=\[500, .*\] is invalid: class 0 asks for 500 images and has \d+;",
        ),
        (
            {"class_counts": [1] * 10},
            r"^class_counts=\[1, .*\] is invalid: it keeps 10 training images, fewer than one "
            r"batch \(batch_size=16\)",
        ),
    ],
    ids=["one count per class", "at most what a class has", "at least one batch"],
)
def test_counts_the_split_cannot_give_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits(**kwargs)


@needs_mnist
def test_mnist_long_tail():
    available = load_mnist(DATA_DIR, train=True, download=False)[1].bincount().tolist()
    datamodule = MNISTDataModule(data_dir=DATA_DIR, download=False, imbalance_ratio=10)
    datamodule.setup("fit")
    # Cao et al.'s profile from the largest class (1: 6742); class 0 keeps all of its 5923.
    expected = [min(n, int(6742 * 0.1 ** (c / 9))) for c, n in enumerate(available)]
    assert datamodule.train_class_counts() == expected
    assert expected[0] == available[0] and expected[-1] == 674
    assert len(datamodule.val_dataloader()[1].dataset) == 10000  # the test split stays whole

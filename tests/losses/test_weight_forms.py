"""The forms of weighted InfoNCE's weights (orbitcl.losses.weight_forms, kernels.targets): set by
classes (SupCon, Soft SupCon, X-CLR), applied through class sums instead of a (2N, 2N) matrix,
and by low-rank logits (y-Aware); against the dense W, on a process's share of the rows too, with
arbitrary labels and where a softmax over all classes would underflow."""

import pytest
import torch
from helpers.loss_cases import assert_all_close, value_and_grads, views
from helpers.reference_weighted import naive_weighted_info_nce, naive_xclr_weights

from orbitcl.losses import SupConLoss, XCLRLoss, weighted_info_nce
from orbitcl.losses.kernels import ClassTargets, anchor_rows
from orbitcl.losses.weight_forms import ClassWeights, LogitWeights
from orbitcl.losses.y_aware import y_aware_kernel_weights


def random_class_weights(n, n_classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(n_classes, (n,), generator=g)
    affinity = torch.rand(n_classes, n_classes, generator=g, dtype=torch.float64) + 0.05
    return ClassWeights(classes, affinity)


@pytest.mark.parametrize("images", [None, slice(0, 3), slice(2, 7)])
def test_class_sums_apply_the_dense_weights_and_their_transpose(images):
    n, d = 7, 5
    weights = random_class_weights(n, n_classes=4)
    w = weights.dense(torch.float64)  # (2N, 2N), the definition
    z = torch.randn(2 * n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z_rows, cols = anchor_rows(z, images)
    targets = ClassTargets(weights.classes.repeat(2), weights.affinity, cols)
    torch.testing.assert_close(targets.times(z, z_rows), w[cols] @ z, rtol=1e-12, atol=1e-12)
    u = torch.randn(len(cols), d, dtype=torch.float64)
    torch.testing.assert_close(targets.transposed_times(u), w[cols].T @ u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("images", [None, slice(1, 5)])
def test_the_core_with_class_weights_equals_it_with_their_matrix(images):
    z_a, z_b = views(6, 4)
    weights = random_class_weights(6, n_classes=3, seed=2)
    assert_all_close(
        value_and_grads(weighted_info_nce(z_a, z_b, weights, 0.3, images), z_a, z_b),
        value_and_grads(
            naive_weighted_info_nce(z_a, z_b, weights.dense(torch.float64), 0.3, images), z_a, z_b
        ),
    )


def test_supcon_takes_any_integer_labels():
    z_a, z_b = views(6, 4)
    labels = torch.tensor([-3, 100, 7, 100, -3, 7])
    assert_all_close(
        value_and_grads(SupConLoss(0.5)(z_a, z_b, labels), z_a, z_b),
        value_and_grads(SupConLoss(0.5)(z_a, z_b, torch.tensor([0, 2, 1, 2, 0, 1])), z_a, z_b),
    )


def test_xclr_stays_finite_where_the_most_similar_class_is_not_in_the_batch():
    # Class 2 is every class's most similar by far; at tau_s = 0.01 the batch's own classes'
    # exp(S / tau_s) are exp(-200) below it: a shift by the row's overall largest entry would
    # underflow the sums to 0 (in float32 and float64 alike).
    similarity = [[1.0, 0.0, 3.0], [0.0, 1.0, 3.0], [3.0, 3.0, 1.0]]
    labels = torch.tensor([0, 1, 0, 1])
    z_a, z_b = views(4, 3)
    reference = naive_xclr_weights(labels, torch.tensor(similarity, dtype=torch.float64), 0.01)
    assert_all_close(
        value_and_grads(XCLRLoss(0.3, 0.01, similarity)(z_a, z_b, labels), z_a, z_b),
        value_and_grads(naive_weighted_info_nce(z_a, z_b, reference, 0.3), z_a, z_b),
    )
    loss32 = XCLRLoss(0.3, 0.01, similarity)(z_a.float(), z_b.float(), labels)
    assert torch.isfinite(loss32)


@pytest.mark.parametrize(
    "classes, affinity, message",
    [
        (torch.tensor([0, 1]), -torch.ones(2, 2), "entries >= 0"),
        (torch.tensor([0, 2]), torch.ones(2, 2), r"class indices in \[0, 2\)"),
        (torch.tensor([0, 1]), torch.ones(2, 2) - torch.eye(2), r"F\[c, c\] must be > 0"),
    ],
)
def test_bad_class_weights_are_refused(classes, affinity, message):
    z_a, z_b = views(2, 3)
    with pytest.raises(ValueError, match=message):
        weighted_info_nce(z_a, z_b, ClassWeights(classes, affinity.double()), 0.5)


@pytest.mark.parametrize("images", [None, slice(2, 6)])
def test_the_core_with_logit_weights_equals_it_with_their_matrix(images):
    z_a, z_b = views(6, 4)
    g = torch.Generator().manual_seed(3)
    left, right = (torch.randn(12, 3, generator=g, dtype=torch.float64) for _ in range(2))
    weights = LogitWeights(left, right)
    w = weights.dense(torch.float64)
    expected = (left @ right.T).exp().fill_diagonal_(0.0)
    torch.testing.assert_close(w, expected / expected.sum(1, keepdim=True))
    assert_all_close(
        value_and_grads(weighted_info_nce(z_a, z_b, weights, 0.4, images), z_a, z_b),
        value_and_grads(naive_weighted_info_nce(z_a, z_b, w, 0.4, images), z_a, z_b),
    )


def test_y_aware_rows_stay_finite_for_labels_far_apart():
    # Labels 1e3 sigma apart: every other image's kernel value underflows to 0, but the other
    # view of each image has its label, so each row keeps exp(0) = 1.
    labels = torch.tensor([0.0, 1e3, 2e3])
    w = y_aware_kernel_weights(labels, sigma=1.0).dense(torch.float32)
    expected = torch.zeros(6, 6)
    expected[torch.arange(6), torch.arange(6).roll(3)] = 1.0  # all weight on the other view
    torch.testing.assert_close(w, expected)


def test_bad_logit_weights_are_refused():
    z_a, z_b = views(2, 3)
    with pytest.raises(ValueError, match=r"right must have shape \(2N, r\) = \(4, r\)"):
        weighted_info_nce(z_a, z_b, LogitWeights(torch.ones(4, 2), torch.ones(3, 2)), 0.5)
    overflowing = LogitWeights(torch.full((4, 1), 30.0), torch.full((4, 1), 30.0))  # exp(900)
    with pytest.raises(ValueError, match="finite"):
        weighted_info_nce(z_a, z_b, overflowing, 0.5)

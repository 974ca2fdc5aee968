"""Weighted InfoNCE (orbitcl.losses.weighted) and its weightings, SupCon, Soft SupCon, y-Aware
and X-CLR: against naive float64 references written from geometry.md (values and gradients),
their limits, Gibbs' bound, DDP, and the errors of bad weights, labels and settings."""

import functools

import numpy as np
import pytest
import torch
from helpers.gloo_ranks import WORLD, rows, spawn
from helpers.loss_cases import EXACT, assert_all_close, value_and_grads, views
from helpers.reference_relatives import naive_supcon
from helpers.reference_weighted import (
    naive_soft_supcon_weights,
    naive_weighted_info_nce,
    naive_xclr_weights,
    naive_y_aware_weights,
)

from orbitcl.losses import (
    NTXentLoss,
    SoftSupConLoss,
    SupConLoss,
    XCLRLoss,
    YAwareLoss,
    weighted_info_nce,
)
from orbitcl.losses.supcon import soft_supcon_weights, supcon_weights
from orbitcl.losses.weighted import weight_entropy

SIMILARITY = [[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]]  # 3 classes


def class_labels(n, classes=3, seed=0):
    return torch.randint(classes, (n,), generator=torch.Generator().manual_seed(seed))


def random_weights(n_anchors, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n_anchors, n_anchors, generator=g, dtype=torch.float64) ** 3  # uneven
    w.fill_diagonal_(0.0)
    return w / w.sum(1, keepdim=True)


@pytest.mark.parametrize("images", [None, slice(1, 4)])
@pytest.mark.parametrize("n, d, temperature", [(2, 3, 0.1), (5, 8, 0.5), (7, 4, 1.0)])
def test_core_matches_reference(n, d, temperature, images):
    z_a, z_b = views(n, d)
    w = random_weights(2 * n)
    assert_all_close(
        value_and_grads(weighted_info_nce(z_a, z_b, w, temperature, images), z_a, z_b),
        value_and_grads(naive_weighted_info_nce(z_a, z_b, w, temperature, images), z_a, z_b),
    )


def labelled(name, n, seed=0):
    """(module, labels, naive weights) of each weighting."""
    labels = class_labels(n, seed=seed)
    if name == "soft_supcon":
        return SoftSupConLoss(0.3, epsilon=0.2), labels, naive_soft_supcon_weights(labels, 0.2)
    if name == "y_aware_line":
        y = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return YAwareLoss(0.3, sigma=0.4), y, naive_y_aware_weights(y, 0.4)
    if name == "y_aware_circle":
        angle = torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 2 * torch.pi
        y = torch.stack([angle.cos(), angle.sin()], 1).double()  # (N, 2) on the circle
        return YAwareLoss(0.3, sigma=0.7), y, naive_y_aware_weights(y, 0.7)
    similarity = torch.tensor(SIMILARITY, dtype=torch.float64)
    weights = naive_xclr_weights(labels, similarity, 0.25)
    return XCLRLoss(0.3, 0.25, SIMILARITY), labels, weights


WEIGHTINGS = ["soft_supcon", "y_aware_line", "y_aware_circle", "xclr"]


@pytest.mark.parametrize("name", WEIGHTINGS)
def test_weightings_match_their_reference(name):
    z_a, z_b = views(6, 5)
    loss, labels, weights = labelled(name, 6)
    torch.testing.assert_close(loss.weights(labels, torch.float64), weights, **EXACT)
    assert_all_close(
        value_and_grads(loss(z_a, z_b, labels), z_a, z_b),
        value_and_grads(naive_weighted_info_nce(z_a, z_b, weights, 0.3), z_a, z_b),
    )


def test_supcon_over_the_core_equals_the_formula_to_1e_12():
    z_a, z_b = views(9, 6)
    labels = class_labels(9)
    for actual, expected in zip(
        value_and_grads(SupConLoss(0.4)(z_a, z_b, labels), z_a, z_b),
        value_and_grads(naive_supcon(z_a, z_b, labels, 0.4), z_a, z_b),
        strict=True,
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_supcon_and_soft_supcon_given_the_class_count_equal_the_formulas():
    # With num_classes (what training sets from the datamodule) the labels are class indices
    # and no torch.unique runs; classes 3 and 5 of 7 absent from the batch weigh nothing.
    z_a, z_b = views(9, 6)
    labels = torch.tensor([0, 2, 2, 4, 6, 0, 1, 6, 2])
    cases = [
        (SupConLoss(0.4, num_classes=7), naive_supcon(z_a, z_b, labels, 0.4)),
        (
            SoftSupConLoss(0.4, 0.2, num_classes=7),
            naive_weighted_info_nce(z_a, z_b, naive_soft_supcon_weights(labels, 0.2), 0.4),
        ),
    ]
    for loss, expected in cases:
        assert_all_close(
            value_and_grads(loss(z_a, z_b, labels), z_a, z_b), value_and_grads(expected, z_a, z_b)
        )
    with pytest.raises(ValueError, match=r"^num_classes=0 is invalid: must be null"):
        SupConLoss(num_classes=0)


def test_limits_supcon_of_distinct_labels_and_soft_supcon_as_epsilon_vanishes():
    z_a, z_b = views(8, 6)
    distinct = torch.arange(8)
    for loss in (SupConLoss(0.3), SoftSupConLoss(0.3, epsilon=1e-13)):
        assert_all_close(
            value_and_grads(loss(z_a, z_b, distinct), z_a, z_b),
            value_and_grads(NTXentLoss(0.3)(z_a, z_b), z_a, z_b),
        )
    labels = class_labels(8)
    soft = value_and_grads(SoftSupConLoss(0.3, epsilon=1e-13)(z_a, z_b, labels), z_a, z_b)
    hard = value_and_grads(SupConLoss(0.3)(z_a, z_b, labels), z_a, z_b)
    for s, h in zip(soft, hard, strict=True):
        torch.testing.assert_close(s, h, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        gap = SoftSupConLoss(0.3, 0.1)(z_a, z_b, labels) - SupConLoss(0.3)(z_a, z_b, labels)
    assert abs(gap.item()) > 1e-3  # epsilon matters where it is not small


@pytest.mark.parametrize("name", ["random", *WEIGHTINGS])
def test_gibbs_bound_and_its_equality_where_p_is_w(name):
    z_a, z_b = views(6, 5)
    if name == "random":
        weights = random_weights(12)
    else:
        _, _, weights = labelled(name, 6)
    assert weighted_info_nce(z_a, z_b, weights, 0.3) >= weight_entropy(weights) - 1e-12
    # One-hot weights (NT-Xent's) have H = 0 and the loss is NT-Xent's.
    one_hot = torch.zeros(12, 12, dtype=torch.float64)
    one_hot[torch.arange(12), torch.arange(12).roll(6)] = 1.0
    assert float(weight_entropy(one_hot)) == 0.0
    torch.testing.assert_close(
        weighted_info_nce(z_a, z_b, one_hot, 0.3), NTXentLoss(0.3)(z_a, z_b), **EXACT
    )


def test_the_bound_is_reached_when_the_softmax_equals_the_weights():
    """L_W = H(W) exactly where P = W: W uniform over the other anchors is reached by 2N anchors
    on a regular simplex (every cosine -1/(2N-1)), where p_ij = 1/(2N-1) = W_ij."""
    m = 6
    simplex = torch.eye(m, dtype=torch.float64) - 1.0 / m  # centred basis: a regular simplex
    rotation = torch.linalg.qr(torch.randn(m, m, dtype=torch.float64))[0]
    z = simplex @ rotation
    uniform = (1 - torch.eye(m, dtype=torch.float64)) / (m - 1)
    loss = weighted_info_nce(z[: m // 2], z[m // 2 :], uniform, 0.5)
    torch.testing.assert_close(loss, weight_entropy(uniform), **EXACT)


def test_weights_in_float32_rows_sum_to_one():
    labels = class_labels(50, classes=7)
    for w in (supcon_weights(labels), soft_supcon_weights(labels, 0.1)):
        assert w.dtype == torch.float32
        assert torch.allclose(w.sum(1), torch.ones(100), atol=1e-6)


@pytest.mark.parametrize(
    "weights, message",
    [
        (torch.ones(6, 6) / 5, "diagonal"),
        (torch.full((4, 4), 0.25), r"shape \(2N, 2N\) = \(6, 6\)"),
        (-random_weights(6), ">= 0"),
        (random_weights(6) * 2, "sum to 1"),
    ],
)
def test_bad_weights_are_refused(weights, message):
    z_a, z_b = views(3, 4)
    with pytest.raises(ValueError, match=message):
        weighted_info_nce(z_a, z_b, weights.double(), 0.5)


def test_bad_settings_and_labels_name_the_field(tmp_path):
    z_a, z_b = views(4, 5)
    with pytest.raises(ValueError, match=r"^epsilon=1.5 is invalid: must be in \(0, 1\)"):
        SoftSupConLoss(epsilon=1.5)
    with pytest.raises(ValueError, match=r"^sigma=0 is invalid: must be > 0"):
        YAwareLoss(sigma=0)
    with pytest.raises(ValueError, match=r"^class_similarity=None is invalid"):
        XCLRLoss()
    with pytest.raises(ValueError, match=r"^target_temperature=0 is invalid"):
        XCLRLoss(target_temperature=0, class_similarity=SIMILARITY)
    with pytest.raises(ValueError, match=r"^class_similarity='nowhere.npy' is invalid"):
        XCLRLoss(class_similarity="nowhere.npy")
    with pytest.raises(ValueError, match="C x C matrix"):
        XCLRLoss(class_similarity=[[1.0, 0.0]])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        XCLRLoss(class_similarity=SIMILARITY)(z_a, z_b, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="YAwareLoss needs continuous"):
        YAwareLoss()(z_a, z_b, torch.arange(4))
    with pytest.raises(ValueError, match="SoftSupConLoss needs integer class labels"):
        SoftSupConLoss()(z_a, z_b, torch.rand(4))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) or \(N, m\) with N = 4"):
        YAwareLoss()(z_a, z_b, torch.rand(5))
    path = tmp_path / "similarity.npy"
    np.save(path, np.array(SIMILARITY))
    from_file = XCLRLoss(class_similarity=str(path))(z_a, z_b, torch.tensor([0, 1, 2, 0]))
    from_list = XCLRLoss(class_similarity=SIMILARITY)(z_a, z_b, torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(from_file, from_list, **EXACT)


def test_xclr_class_similarity_is_float64_on_the_cpu_and_float32_on_a_device():
    # No float64 on an accelerator: the meta device stands in for one (same _apply path).
    loss = XCLRLoss(class_similarity=SIMILARITY)
    assert loss.class_similarity.dtype == torch.float64
    moved = loss.to("meta")
    assert (moved.class_similarity.device.type, moved.class_similarity.dtype) == (
        "meta",
        torch.float32,
    )
    moved.set_class_similarity(SIMILARITY)  # replaced on the device, in float32
    assert (moved.class_similarity.device.type, moved.class_similarity.dtype) == (
        "meta",
        torch.float32,
    )
    back = moved.to_empty(device="cpu")
    back.set_class_similarity(SIMILARITY)
    assert back.class_similarity.dtype == torch.float64
    torch.testing.assert_close(back.class_similarity, torch.tensor(SIMILARITY, dtype=torch.float64))


PER_RANK = 4
MODULES = {  # built with gather_distributed=True on the ranks
    "soft_supcon": functools.partial(SoftSupConLoss, temperature=0.3, epsilon=0.2),
    "y_aware": functools.partial(YAwareLoss, temperature=0.3, sigma=0.5),
    "xclr": functools.partial(
        XCLRLoss, temperature=0.3, target_temperature=0.5, class_similarity=SIMILARITY
    ),
}


def _global_batch():
    z_a, z_b = views(WORLD * PER_RANK, 6, seed=4)
    classes = class_labels(WORLD * PER_RANK, seed=4)
    continuous = torch.rand(WORLD * PER_RANK, 2, generator=torch.Generator().manual_seed(4))
    labels = {"soft_supcon": classes, "y_aware": continuous.double(), "xclr": classes}
    return z_a.detach(), z_b.detach(), labels


def _rank_losses(rank: int) -> dict:
    z_a, z_b, labels = _global_batch()
    z_a, z_b = (z[rows(rank, PER_RANK)].clone().requires_grad_() for z in (z_a, z_b))
    return {
        name: value_and_grads(
            make(gather_distributed=True)(z_a, z_b, labels[name][rows(rank, PER_RANK)]), z_a, z_b
        )
        for name, make in MODULES.items()
    }


def test_weighted_losses_across_processes_equal_the_one_process_loss(tmp_path):
    per_rank = spawn(_rank_losses, tmp_path)
    z_a, z_b, labels = _global_batch()
    z_a.requires_grad_(), z_b.requires_grad_()
    for name, make in MODULES.items():
        expected, grad_a, grad_b = value_and_grads(make()(z_a, z_b, labels[name]), z_a, z_b)
        mean = torch.stack([out[name][0] for out in per_rank]).mean()
        torch.testing.assert_close(mean, expected, rtol=0, atol=1e-12, msg=name)
        for r, out in enumerate(per_rank):
            own = rows(r, PER_RANK)
            torch.testing.assert_close(out[name][1] / WORLD, grad_a[own], rtol=0, atol=1e-12)
            torch.testing.assert_close(out[name][2] / WORLD, grad_b[own], rtol=0, atol=1e-12)

"""Tension between classes (orbitcl.metrics.class_tension) against a naive loop over every
anchor-negative pair from ORL's tension formula written out; the kNN confusion matrix and
leave-one-out kNN (orbitcl.metrics.knn) against direct counts."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from orbitcl.metrics.class_tension import class_tension, rank_correlation
from orbitcl.metrics.knn import confusion_matrix, leave_one_out_predict


def naive(z_a, z_b, labels, n_classes, tau, t_min):
    z = F.normalize(torch.cat([z_a, z_b]).double(), dim=1)
    n = len(z_a)
    y = torch.cat([labels, labels]).tolist()
    tension_sum = torch.zeros(n_classes, n_classes, dtype=torch.float64)
    share_sum = torch.zeros(n_classes, n_classes, dtype=torch.float64)
    pairs = torch.zeros(n_classes, n_classes, dtype=torch.float64)
    anchors = torch.zeros(n_classes, dtype=torch.float64)
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        u = (z[p] - z[i]) / (z[p] - z[i]).norm()
        t = {}
        for k in range(2 * n):
            if k in (i, p):
                continue
            t[k] = min(max(float(u @ (z[k] - z[i]) / (z[k] - z[i]).norm()), t_min), 1.0)
        logits = {k: float(z[i] @ z[k]) * t[k] / tau for k in t} | {p: float(z[i] @ z[p]) / tau}
        norm = sum(math.exp(v) for v in logits.values())
        anchors[y[i]] += 1
        for k, value in t.items():
            tension_sum[y[i], y[k]] += value
            pairs[y[i], y[k]] += 1
            share_sum[y[i], y[k]] += math.exp(logits[k]) / norm
    return tension_sum / pairs, share_sum / anchors[:, None], pairs


def test_class_tension_equals_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    n, d, c = 12, 5, 3
    z_a = torch.randn(n, d, generator=g)
    z_b = z_a + 0.5 * torch.randn(n, d, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    labels[: 2 * c] = torch.arange(c).repeat(2)  # every class has a same-class negative
    result = class_tension(z_a, z_b, labels, c, temperature=0.3, t_min=1e-3)
    tension, share, pairs = naive(z_a, z_b, labels, c, 0.3, 1e-3)
    torch.testing.assert_close(result.pairs, pairs)
    torch.testing.assert_close(result.tension, tension, rtol=1e-5, atol=1e-6)  # T in float32
    torch.testing.assert_close(result.share, share, rtol=1e-5, atol=1e-6)


def test_rank_correlation_is_spearman_off_the_diagonal():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(4, 4, generator=g), torch.rand(4, 4, generator=g)
    off = ~torch.eye(4, dtype=torch.bool)
    expected = stats.spearmanr(a[off].numpy(), b[off].numpy()).statistic
    assert rank_correlation(a, b) == pytest.approx(expected)
    assert rank_correlation(a, a * 2 + 1) == pytest.approx(1.0)


def test_confusion_matrix_counts_and_leave_one_out():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 1, 0, 1, 1, 0])
    expected = torch.tensor(
        [[2 / 3, 1 / 3, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64
    )
    torch.testing.assert_close(confusion_matrix(predicted, labels, 3), expected)
    # two tight clusters: each point's neighbours (itself left out) are its own class
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0] * 5 + [1] * 5)
    x = centres[y] + 0.01 * torch.randn(10, 2, generator=g)
    assert torch.equal(leave_one_out_predict(x, y, 2, k=3), y)
    # a lone point of class 1 among class 0 has only class-0 neighbours
    y_odd = y.clone()
    y_odd[0] = 1
    assert leave_one_out_predict(x, y_odd, 2, k=3)[0] == 0

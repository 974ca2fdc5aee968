"""Tension between classes: which classes' negatives ORL pushes hardest (docs/representation.md,
"Tension between classes").

On two views z_a, z_b (N, d) of N labelled images (labels (N,), C classes), rows and columns
ordered ``[z_a; z_b]`` as everywhere in orbitcl, with ORL's tension ``T`` (2N, 2N) from
``losses.functional.tension`` (the formula is written once, in ``losses/kernels/tension.py``):

- ``tension[c, c']``: the mean of ``T[i, k]`` over anchors i of class c and their negatives k
  (k not i, not its positive p(i)) of class c';
- ``share[c, c']``: the mean over anchors i of class c of the softmax mass that ORL's logits
  ``sim(i, k) T[i, k] / tau`` (the positive's ``sim / tau``; k != i) give to the negatives of
  class c'. Each row sums to 1 minus the mean softmax share of the positive.

Tension is defined for any pair of views, so the matrices exist for every loss (NT-Xent's show
what ORL *would* weight); for MoCo-ORL they are the in-batch tension among these images, not
against its queue. ``rank_correlation`` compares such a matrix with another over the ordered
pairs c != c' (Spearman), e.g. with a kNN confusion matrix (``metrics.knn.confusion_matrix``):
are the classes ORL finds dangerous the ones a kNN confuses?
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor

from orbitcl.losses import functional


@dataclass
class ClassTension:
    tension: Tensor  # (C, C) float64: mean tension of class c's anchors on class c' negatives
    share: Tensor  # (C, C) float64: their mean softmax share under ORL's logits
    pairs: Tensor  # (C, C) float64: the anchor-negative pairs behind each tension entry


def class_tension(
    z_a: Tensor,
    z_b: Tensor,
    labels: Tensor,
    n_classes: int,
    temperature: float = 0.5,
    t_min: float = 1e-6,
) -> ClassTension:
    """The class tension matrices of views z_a, z_b (N, d) of images with labels (N,)."""
    functional.check_temperature(temperature)
    if len(z_a) != len(labels) or z_a.shape != z_b.shape:
        raise ValueError(
            f"z_a {tuple(z_a.shape)}, z_b {tuple(z_b.shape)} and labels {tuple(labels.shape)} "
            "are invalid: need two views (N, d) of the same N labelled images"
        )
    with torch.no_grad():
        t = functional.tension(z_a.float(), z_b.float(), t_min).double()  # (2N, 2N)
        z = F.normalize(torch.cat([z_a, z_b]).double(), dim=1)
        n = len(z_a)
        rows = torch.arange(2 * n)
        negative = torch.ones(2 * n, 2 * n, dtype=torch.bool)
        negative[rows, rows] = False
        negative[rows, rows.roll(n)] = False  # the positive p(i)
        logits = (z @ z.T) * t / temperature  # T[i, p(i)] = 1: the positive's is sim / tau
        logits[rows, rows] = float("-inf")  # k != i
        softmax = logits.softmax(dim=1)  # (2N, 2N)
    onehot = F.one_hot(torch.cat([labels, labels]).long(), n_classes).double()  # (2N, C)
    mask = negative.double()
    pairs = onehot.T @ mask @ onehot  # (C, C)
    tension = onehot.T @ (t * mask) @ onehot / pairs
    anchors = onehot.sum(0)[:, None]  # (C, 1): anchors of each class
    share = onehot.T @ (softmax * mask) @ onehot / anchors
    return ClassTension(tension, share, pairs)


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation between two (C, C) matrices over the pairs c != c'; NaN where
    either is constant there (e.g. a kNN that confuses no class)."""
    off = ~torch.eye(len(a), dtype=torch.bool)
    x, y = a[off].double(), b[off].double()
    if bool((x == x[0]).all()) or bool((y == y[0]).all()):
        return float("nan")
    return float(stats.spearmanr(x.numpy(), y.numpy()).statistic)

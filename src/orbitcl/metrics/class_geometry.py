"""The class geometry of embeddings (geometry.md, "Class geometry of trained embeddings").

On unit embeddings z (M, d) with class labels (M,) of C classes, everything comes from the class
sums ``S_c = sum_{i in c} z_i`` (C, d), never from an M x M matrix:

- prototypes: the normalised class means; ``M_cc'`` their cosines (C, C);
- ``simplex_deviation = max_{c != c'} |M_cc' + 1/(C-1)|``: 0 on a regular simplex;
- ``within_cos``: the mean cosine over same-class pairs i != j (1 at collapse),
  ``sum_c (||S_c||^2 - n_c) / sum_c n_c (n_c - 1)``;
- ``between_cos``: the mean over pairs of different classes,
  ``sum_{c != c'} S_c . S_c' / sum_{c != c'} n_c n_c'``; ``gap = within_cos - between_cos``;
- ``prototype_cos_std``: the standard deviation of ``M_cc'`` over the pairs c < c': 0 on any
  regular simplex (also Soft SupCon's, of cosine ``c*`` > -1/(C-1), which ``simplex_deviation``
  counts as a deviation), growing as the simplex bends;
- ``size_correlation``, given the training class sizes n_c: Spearman's rank correlation, over the
  pairs c < c', between ``n_c + n_c'`` and ``M_cc'``: the imbalance signature (SupCon's
  prototypes of large classes are pushed furthest apart: a negative correlation). A rank
  statistic: it gives the direction of a bend, not its size (``prototype_cos_std``).

Neural collapse (Papyan et al. 2020), on the features h (M, d) *as given* (not normalised), from
the class means ``mu_c`` and the global mean ``mu_G`` (the mean of the class means):

- ``nc1 = tr(Sigma_W Sigma_B^+) / C``, ``Sigma_W`` the within-class covariance (over all M
  samples), ``Sigma_B = 1/C sum_c (mu_c - mu_G)(mu_c - mu_G)^T``: the within-class spread in the
  directions that separate classes; 0 when every class has collapsed to its mean;
- ``nc2_equinorm``: ``std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||``, 0 when the centred class
  means have equal norms;
- ``nc2_equiangularity``: ``std_{c != c'}`` of the cosines between centred class means, 0 when all
  angles are equal. The third NC2 condition, that the angle is the simplex's ``-1/(C-1)``, is
  ``simplex_deviation`` above (on the prototypes of unit embeddings, not centred: the
  geometry the losses act on).
"""

import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor


def class_sums(z: Tensor, labels: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """``S`` (C, d), the sums of the unit embeddings of each class, and the counts (C,)."""
    unit = F.normalize(z.double(), dim=1)
    sums = torch.zeros(n_classes, z.shape[1], dtype=torch.float64).index_add_(0, labels, unit)
    return sums, torch.bincount(labels, minlength=n_classes).double()


def prototype_cosines(z: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """``M`` (C, C): cosines between the normalised class means (classes with no sample: NaN)."""
    sums, counts = class_sums(z, labels, n_classes)
    prototypes = F.normalize(sums, dim=1)
    cosines = prototypes @ prototypes.T
    empty = counts == 0
    cosines[empty, :] = float("nan")
    cosines[:, empty] = float("nan")
    return cosines


def class_geometry(
    z: Tensor, labels: Tensor, n_classes: int, class_sizes: Tensor | None = None
) -> dict[str, float]:
    """The metrics of the module docstring (keys without the ``classes/`` prefix)."""
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes} is invalid: class geometry needs >= 2 classes")
    sums, counts = class_sums(z, labels, n_classes)
    cosines = prototype_cosines(z, labels, n_classes)
    off = ~torch.eye(n_classes, dtype=torch.bool)
    within_pairs = (counts * (counts - 1)).sum()
    total = sums.sum(0)
    between_pairs = counts.sum() ** 2 - counts.square().sum()
    metrics = {
        "simplex_deviation": (cosines[off] + 1 / (n_classes - 1)).abs().nan_to_num(0).max().item(),
        "within_cos": ((sums.square().sum(1) - counts).sum() / within_pairs).item(),
        # sum_{c != c'} S_c . S_c' = ||sum_c S_c||^2 - sum_c ||S_c||^2
        "between_cos": ((total.square().sum() - sums.square().sum()) / between_pairs).item(),
    }
    metrics["gap"] = metrics["within_cos"] - metrics["between_cos"]
    upper = torch.triu_indices(n_classes, n_classes, offset=1)
    metrics["prototype_cos_std"] = cosines[upper[0], upper[1]].std(correction=0).item()
    if class_sizes is not None:
        metrics["size_correlation"] = size_correlation(cosines, class_sizes)
    return metrics


def class_means(h: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """``mu_c`` (C, d) of the features h (M, d) as given, float64; raises if a class is empty."""
    counts = torch.bincount(labels, minlength=n_classes).double()
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"classes {missing} have no sample: neural collapse needs every class")
    sums = torch.zeros(n_classes, h.shape[1], dtype=torch.float64).index_add_(0, labels, h.double())
    return sums / counts[:, None]


def nc1(h: Tensor, labels: Tensor, n_classes: int) -> float:
    """NC1 = ``tr(Sigma_W Sigma_B^+) / C`` of features h (M, d) with labels (M,) (docstring)."""
    h = h.detach().double().cpu()
    means = class_means(h, labels, n_classes)  # (C, d)
    within = h - means[labels]  # (M, d)
    sigma_w = within.T @ within / len(h)
    between = means - means.mean(0)
    sigma_b = between.T @ between / n_classes
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / n_classes)


def nc2(h: Tensor, labels: Tensor, n_classes: int) -> dict[str, float]:
    """``nc2_equinorm`` and ``nc2_equiangularity`` of features h (M, d) (module docstring)."""
    means = class_means(h.detach().double().cpu(), labels, n_classes)
    centred = means - means.mean(0)  # (C, d)
    norms = centred.norm(dim=1)
    unit = centred / norms[:, None]
    upper = torch.triu_indices(n_classes, n_classes, offset=1)
    cosines = (unit @ unit.T)[upper[0], upper[1]]
    return {
        "nc2_equinorm": float(norms.std(correction=0) / norms.mean()),
        "nc2_equiangularity": float(cosines.std(correction=0)),
    }


def size_correlation(cosines: Tensor, class_sizes: Tensor) -> float:
    """Spearman's rank correlation between ``n_c + n_c'`` and ``M_cc'`` over the pairs c < c'."""
    c = len(cosines)
    upper = torch.triu_indices(c, c, offset=1)
    sizes = torch.as_tensor(class_sizes, dtype=torch.float64)
    pair_sizes = (sizes[upper[0]] + sizes[upper[1]]).numpy()
    pair_cosines = cosines[upper[0], upper[1]].numpy()
    return float(stats.spearmanr(pair_sizes, pair_cosines).statistic)

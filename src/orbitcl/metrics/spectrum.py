"""The spectrum of a representation: how many directions the embeddings really use
(docs/representation.md).

All functions take embeddings z (M, d) (LiDAR: (A anchors, K views, d)) and compute in float64
on the CPU: a validation-time diagnostic, not a hot path.

- ``singular_values``: sigma_1 >= ... of the *centred* embeddings (M, d) -> (min(M, d),).
  Centring removes the mean direction, which on unit embeddings is a large sigma_1 that says
  where the cloud sits, not how it spreads.
- ``rankme`` (Garrido et al. 2023): ``exp(-sum_k p_k log p_k)``, ``p_k = sigma_k / ||sigma||_1 +
  eps``, the entropy of the *singular values* (Roy and Vetterli's effective rank, as the paper
  defines RankMe), not of the eigenvalues sigma_k^2 (reptrix's variant), which weighs the
  leading directions more and gives a smaller rank. eps = 1e-7 as in reptrix and stable-SSL's
  first RankMe monitor; stable-pretraining's callback now adds 1e-5 and takes the singular
  values of the embeddings as they are, uncentred.
- ``alpha_req`` (Agrawal et al. 2022): the alpha of ``lambda_k ~ k^-alpha`` for the eigenvalues
  ``lambda_k = sigma_k^2 / (M - 1)`` of the covariance, fitted as the authors' code fits it
  (reptrix's ``get_alpha``, after Stringer et al. 2019): least squares of ``log lambda_k`` on
  ``log k`` weighted by ``1 / k``, over the ranks ``k = start .. end`` = 6 .. 100 by default,
  leaving out the leading directions and the tail; ``end`` is cut to the last eigenvalue above
  ``floor * lambda_1``, as the numerically zero tail's logs are rounding noise.
- ``lidar`` (Thilak et al. 2024): RankMe's entropy applied to the eigenvalues of the LDA matrix
  ``Sigma_w^-1/2 Sigma_b Sigma_w^-1/2``, between the anchors' mean views (Sigma_b) relative to
  the scatter of each anchor's views (Sigma_w + delta I), with delta = 1e-4 and eps = 1e-8, the
  defaults of stable-pretraining's LiDAR callback. That callback normalises ``(lambda + eps) /
  sum(lambda + eps)`` where orbitcl keeps RankMe's ``lambda / sum(lambda) + eps``; the two differ
  by O(d eps log eps), below 1e-4 of the value (tests/metrics/test_spectrum.py shows it).
  Its eigenvalues come from a Cholesky whitening and an (A, A) or (d, d) Gram matrix, not from
  eigenvectors (``lidar_eigenvalues``): the same numbers to float64 rounding, ~10x cheaper at
  d = 2048.
- ``view_metrics``: the three on one set of orbits, with one SVD for RankMe and alpha-ReQ.
"""

import math

import torch
from torch import Tensor

from orbitcl.checks.numbers import require_int

RANKME_EPS = 1e-7  # Garrido et al. 2023; the value of reptrix and of stable-SSL's first monitor
LIDAR_DELTA = 1e-4  # Thilak et al. 2024: Sigma_w's ridge (stable-pretraining's default)
LIDAR_EPS = 1e-8  # Thilak et al. 2024: in the entropy (stable-pretraining's default)
ALPHA_START, ALPHA_END = 6, 100  # the ranks fitted by the alpha-ReQ authors' code
ALPHA_FLOOR = 1e-12  # eigenvalues below floor * lambda_1 are rounding noise (float64)


def _check_matrix(z: Tensor, name: str = "z", rows: int = 2) -> None:
    if z.ndim != 2 or z.shape[0] < rows or z.shape[1] < 1:
        raise ValueError(f"{name} of shape {tuple(z.shape)} is invalid: need (M >= {rows}, d)")


def singular_values(z: Tensor) -> Tensor:
    """sigma (min(M, d),), descending, of the centred embeddings z (M, d), float64."""
    _check_matrix(z)
    x = z.detach().double().cpu()
    return torch.linalg.svdvals(x - x.mean(0))


def spectral_entropy_rank(values: Tensor, eps: float) -> float:
    """``exp(-sum_k p_k log p_k)`` with ``p_k = v_k / ||v||_1 + eps``: the smooth rank of a
    non-negative spectrum (RankMe's and LiDAR's). 1 for one non-zero value, n for n equal ones
    (plus O(n eps log eps))."""
    v = values.double().clamp_min(0)
    total = v.sum()
    if total <= 0:
        return 1.0  # all embeddings equal: one point, rank 1 (the limit of a vanishing spread)
    p = v / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


def rankme(z: Tensor, eps: float = RANKME_EPS) -> float:
    """RankMe of embeddings z (M, d), in [1, min(M, d)] (module docstring)."""
    return spectral_entropy_rank(singular_values(z), eps)


def eigenvalues(z: Tensor) -> Tensor:
    """lambda (min(M, d),), descending: the covariance's eigenvalues ``sigma^2 / (M - 1)``."""
    return covariance_eigenvalues(singular_values(z), len(z))


def covariance_eigenvalues(sigma: Tensor, m: int) -> Tensor:
    """``sigma^2 / (M - 1)``: the covariance's eigenvalues from the singular values sigma of M
    centred embeddings."""
    return sigma.square() / (m - 1)


def alpha_req(
    z: Tensor, start: int = ALPHA_START, end: int | None = ALPHA_END, floor: float = ALPHA_FLOOR
) -> float:
    """alpha-ReQ of embeddings z (M, d): minus the slope of ``log lambda_k`` on ``log k`` by least
    squares weighted ``1 / k``, over k = start .. end (1-based, inclusive; end cut to, and None
    meaning, the last eigenvalue above ``floor * lambda_1``). NaN when fewer than 2 ranks are
    left to fit."""
    return power_law_exponent(eigenvalues(z), start, end, floor)


def power_law_exponent(
    spectrum: Tensor,
    start: int = ALPHA_START,
    end: int | None = ALPHA_END,
    floor: float = ALPHA_FLOOR,
) -> float:
    """``alpha_req``'s fit on a given descending spectrum (n,)."""
    require_int("start", start, 1)  # a 1-based rank
    lam = spectrum.double()
    usable = int((lam > floor * lam[0]).sum()) if lam[0] > 0 else 0
    end = usable if end is None else min(end, usable)
    if end - start + 1 < 2:
        return float("nan")
    k = torch.arange(start, end + 1, dtype=torch.float64)
    # weights 1/k: the ranks crowd together at large log k, so each octave counts about equally
    w = 1 / k
    x, y = k.log(), lam[start - 1 : end].log()
    x, y = x - (w * x).sum() / w.sum(), y - (w * y).sum() / w.sum()
    return float(-(w * x * y).sum() / (w * x.square()).sum())


def lidar_eigenvalues(views: Tensor, delta: float = LIDAR_DELTA) -> Tensor:
    """The d eigenvalues (d,), ascending, of the LDA matrix ``Sigma_w^-1/2 Sigma_b Sigma_w^-1/2``
    of views (A, K, d) (``lidar``'s docstring), in float64.

    Computed without eigenvectors: with the Cholesky factor ``Sigma_w = L L^T``, the matrix
    ``L^-1 Sigma_b L^-T`` is similar to the LDA matrix (``L^-1 = Q Sigma_w^-1/2`` for an
    orthogonal Q), and with ``Sigma_b = B^T B``, B (A, d), it is ``X X^T`` for
    ``X = L^-1 B^T`` (d, A), whose nonzero eigenvalues are those of the smaller of ``X^T X``
    (A, A) and ``X X^T`` (d, d). The rest, d - min(A, d) of them, are exactly 0 (Sigma_b has
    rank <= A - 1). On d = 2048 this replaces an eigh and a (d, d) eigvalsh of a matrix of
    spread ~1/delta (seconds) by a Cholesky factorisation and a triangular solve (docs/
    representation.md, Cost).
    """
    if views.ndim != 3 or views.shape[0] < 2 or views.shape[1] < 2:
        raise ValueError(
            f"views of shape {tuple(views.shape)} is invalid: need (anchors >= 2, views >= 2, d)"
        )
    e = views.detach().double().cpu()
    a, k, d = e.shape
    means = e.mean(1)  # (A, d): mu_i
    between = (means - means.mean(0)) / math.sqrt(a - 1)  # (A, d): Sigma_b = between^T between
    within = (e - means[:, None]).reshape(a * k, d)
    sigma_w = within.T @ within / (a * (k - 1)) + delta * torch.eye(d, dtype=torch.float64)
    root, info = torch.linalg.cholesky_ex(sigma_w)  # (d, d), lower: Sigma_w = L L^T
    if info != 0:  # only without a ridge: delta <= 0 and a within-class scatter of rank < d
        raise ValueError(
            f"delta={delta} is invalid for these views: Sigma_w + delta I is not positive "
            "definite; need delta > 0"
        )
    x = torch.linalg.solve_triangular(root, between.T, upper=False)  # (d, A): L^-1 B^T
    values = torch.linalg.eigvalsh(x.T @ x if a <= d else x @ x.T)  # (min(A, d),)
    return torch.cat([values.new_zeros(d - len(values)), values])


def lidar(views: Tensor, delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS) -> float:
    """LiDAR of K views of A anchors, views (A, K, d) with A >= 2, K >= 2 (module docstring):

    ``Sigma_b = 1/(A-1) sum_i (mu_i - mu)(mu_i - mu)^T``, mu_i the mean of anchor i's views;
    ``Sigma_w = 1/(A(K-1)) sum_i sum_j (e_ij - mu_i)(e_ij - mu_i)^T + delta I``;
    the smooth rank of the d eigenvalues of ``Sigma_w^-1/2 Sigma_b Sigma_w^-1/2`` (eps in p_k),
    ``lidar_eigenvalues``.
    """
    return spectral_entropy_rank(lidar_eigenvalues(views, delta), eps)


def normalised_log_spectrum(z: Tensor) -> Tensor:
    """``log(sigma_k / sigma_1)`` (min(M, d),), the collapse picture's column at one step:
    0 for the leading direction, very negative for the dead ones (-inf clipped to log 1e-16)."""
    return log_ratios(singular_values(z))


def log_ratios(sigma: Tensor) -> Tensor:
    """``log(sigma_k / sigma_1)`` of a descending spectrum sigma (n,), clipped at log 1e-16."""
    return (sigma / sigma[0].clamp_min(1e-300)).clamp_min(1e-16).log()


def view_metrics(
    views: Tensor, start: int = ALPHA_START, end: int | None = ALPHA_END
) -> tuple[dict[str, float], Tensor]:
    """What the spectrum callback and ``orbitcl.analyze`` measure on views (A, K, d):
    ``{"rankme", "alpha", "lidar"}`` (RankMe and alpha-ReQ over ranks start .. end of the A K
    views flattened, LiDAR of the orbits) and the views' ``normalised_log_spectrum``
    (min(A K, d),). The views' SVD, most of the first three's cost, is taken once for all."""
    flat = views.flatten(0, 1)  # (A K, d)
    sigma = singular_values(flat)
    metrics = {
        "rankme": spectral_entropy_rank(sigma, RANKME_EPS),
        "alpha": power_law_exponent(covariance_eigenvalues(sigma, len(flat)), start, end),
        "lidar": lidar(views),
    }
    return metrics, log_ratios(sigma)

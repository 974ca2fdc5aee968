"""NT-Xent, ORL and ORL's tension as pure functions, on the fast path of ``losses.kernels``.

Conventions are those of ``docs/orl.md`` (and ``kernels.anchors``): ``z_a`` and ``z_b`` are
un-normalised ``(N, d)`` projector outputs, row n of each from image n. The 2N anchors are
``z = normalize(cat([z_a, z_b]))`` and anchor i's positive is ``p(i) = i + N`` for ``i < N``,
else ``i - N``. Losses are means over all 2N anchors; ``images`` (a slice of ``range(N)``)
restricts them to the 2n anchors of those images, each still contrasted with all 2N columns:
a DDP rank's share of the global loss (``orbitcl.losses.gather``).

Every (2n, 2N) quantity comes from the Gram rows ``G = z[R] z^T`` (the only matmul) and
per-anchor O(Nd) terms, never from a (2n, 2N, d) tensor. It is computed in float32 at least
(float64 stays float64), even under autocast, and so are T and the losses.

``ntxent`` and ``orl`` run on ``kernels.blocked``: blocks of Gram rows with a hand-written
backward, no (2n, 2N) matrix kept from forward to backward; ``backend`` chooses ORL's
elementwise kernels ("auto", "eager" or "compile"; None: ``$ORBITCL_LOSS_KERNELS``, else "auto").
``tension`` is plain autograd (``kernels.tension_rows``): the reference formulation, equal to the
blocked losses to rounding.
"""

import torch
from torch import Tensor

from orbitcl.losses import kernels


def check_temperature(temperature: float) -> None:
    """Raise ValueError unless temperature > 0."""
    if not temperature > 0:  # `not >` also rejects NaN
        raise ValueError(f"temperature={temperature} is invalid: must be > 0")


def check_t_min(t_min: float) -> None:
    """Raise ValueError unless t_min is in (0, 1]."""
    if not 0 < t_min <= 1:
        raise ValueError(f"t_min={t_min} is invalid: must be in (0, 1]")


def tension(z_a: Tensor, z_b: Tensor, t_min: float = 1e-6, images: slice | None = None) -> Tensor:
    """ORL's tension T (2N, 2N), rows and columns ordered ``[z_a; z_b]``.

    ``T[i, k] = u_i . (z_k - z_i) / ||z_k - z_i||`` with ``u_i = (z_p(i) - z_i) / ||...||``, on
    unit vectors, clamped to ``[t_min, 1]``; ``T[i, p(i)] = 1``. The self entries ``T[i, i]``
    are undefined and set to 0. Where a direction is undefined, T falls back to 1 (NT-Xent's
    logit): for every negative of an anchor whose views coincide (``u_i`` undefined), and for a
    duplicate negative (``z_k = z_i``). float32 at least. With ``images``, only the 2n rows of
    those images' anchors (2n, 2N).
    """
    check_t_min(t_min)
    z = kernels.unit_anchors(z_a, z_b, 1, "tension")
    z_rows, cols = kernels.anchor_rows(z, images)
    t = kernels.tension_rows(z_rows, z, kernels.gram_rows(z_rows, z), cols, t_min)
    t[torch.arange(len(cols), device=t.device), cols] = 0.0  # undefined: z_k - z_i = 0
    return t


def ntxent(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    images: slice | None = None,
    negatives: str = "all",
) -> Tensor:
    """NT-Xent: ``mean_i [-sim(i, p(i)) / tau + logsumexp_k sim(i, k) / tau]``, k over p(i) and
    the ``negatives`` of i (``kernels.negatives``: ``all`` is SimCLR's k != i), the mean over
    the anchors of ``images`` (default: all)."""
    check_temperature(temperature)
    kernels.check_negatives(negatives)
    z = kernels.unit_anchors(z_a, z_b, 2, "NT-Xent (at least one negative per anchor)")
    z_rows, cols = kernels.anchor_rows(z, images)
    hyper = kernels.Hyper(
        temperature, 1.0, 0.0, tension=False, through_t=False, negatives=negatives
    )
    return kernels.BlockedInfoNCE.apply(z_rows, z, cols, hyper)


def orl(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t_min: float = 1e-6,
    detach_tension: bool = False,
    images: slice | None = None,
    backend: str | None = None,
    negatives: str = "all",
) -> Tensor:
    """ORL: ``mean_i [-sim(i, p(i)) / tau + logsumexp_k sim(i, k) T[i, k] / tau]``, k over p(i)
    and the ``negatives`` of i (as ``ntxent``), the mean over the anchors of ``images``
    (default: all).

    ``T = tension(z_a, z_b, t_min)``, defined for every negative, so unchanged by
    ``negatives``; ``T[i, p(i)] = 1`` keeps the positive's term NT-Xent's. Gradients flow
    through T unless ``detach_tension``. ``backend``: ORL's elementwise kernels.
    """
    check_temperature(temperature)
    check_t_min(t_min)
    kernels.check_negatives(negatives)
    backend = kernels.default_backend() if backend is None else backend
    kernels.check_backend(backend)
    z = kernels.unit_anchors(z_a, z_b, 2, "ORL (at least one negative per anchor)")
    z_rows, cols = kernels.anchor_rows(z, images)
    hyper = kernels.Hyper(
        temperature,
        t_min,
        kernels.tolerance(z),
        True,
        not detach_tension,
        backend=backend,
        negatives=negatives,
    )
    return kernels.BlockedInfoNCE.apply(z_rows, z, cols, hyper)

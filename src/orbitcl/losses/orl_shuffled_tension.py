"""ORL control: ORL with each anchor's tension values shuffled among its negatives.

``docs/orl.md`` ("Known confound"): part of what ORL does may come from the distribution of
its factors T alone (mostly < 1: a softer, higher-temperature repulsion). Permuting each row's
T among that row's negatives keeps the distribution, row by row, and destroys the geometry:
negative k gets the factor that belongs to some other negative's direction.
"""

from typing import ClassVar

import torch
from torch import Tensor

from orbitcl.losses import kernels
from orbitcl.losses.base import TensionLoss
from orbitcl.losses.functional import check_t_min, check_temperature

KEY_RANGE = 2**62  # the sort keys of shuffle_negatives: uniform integers in [0, 2^62)


def shuffle_negatives(
    t: Tensor, cols: Tensor, generator: torch.Generator | None = None, negatives: str = "all"
) -> Tensor:
    """``t`` (2n, 2N) with each row's negative entries (``kernels.negatives``; ``all``:
    ``k != i, p(i)``) permuted uniformly at random among themselves, independently per row; the
    other entries stay.

    Differentiable: entry k of the result is the entry ``pi_i(k)`` of ``t``. Random numbers from
    ``generator``, else torch's global generator of ``t``'s device (seeded by Lightning's
    ``seed_everything``). Memory: a few (2n, K) index matrices (int64), K negatives per row.
    """
    neg = kernels.negative_cols(cols, t.shape[1], negatives)  # (2n, K)
    # A uniform permutation per row: the ranks of i.i.d. uniform int64 keys (ties, which would
    # bias the order, have a probability of about K^2 / 2^63 per row; float32 uniforms would
    # tie often at K in the thousands, and float64 has no place on the device).
    keys = torch.randint(KEY_RANGE, neg.shape, generator=generator, device=t.device)
    source = neg.gather(1, keys.argsort(1))  # (2n, K): pi_i(k) for each negative k
    return t.scatter(1, neg, t.gather(1, source))


def shuffled_tension(
    z_a: Tensor,
    z_b: Tensor,
    t_min: float = 1e-6,
    images: slice | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ORL's tension T (``functional.tension``: rows of ``images``, self entries 0) with each
    row's negative entries shuffled (``shuffle_negatives``); ``T[i, p(i)] = 1``."""
    check_t_min(t_min)
    z, z_rows, cols, rows, _, gram = kernels.dense_opening(
        z_a, z_b, images, "shuffled tension (at least one negative per anchor)"
    )
    t = shuffle_negatives(kernels.tension_rows(z_rows, z, gram, cols, t_min), cols, generator)
    t[rows, cols] = 0.0  # undefined: z_k - z_i = 0
    return t


def orl_shuffled_tension(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float,
    t_min: float = 1e-6,
    detach_tension: bool = True,
    images: slice | None = None,
    generator: torch.Generator | None = None,
    negatives: str = "all",
) -> Tensor:
    """``mean_i [-sim(i, p(i)) / tau + logsumexp_k sim(i, k) T'[i, k] / tau]``, k over p(i) and
    the ``negatives`` of i, over the anchors of ``images``, with ``T'`` ORL's tension shuffled
    among each row's negatives (``shuffle_negatives``, drawing from ``generator``);
    ``T'[i, p(i)] = 1``. Gradients flow through ``T'`` only without ``detach_tension``."""
    check_temperature(temperature)
    check_t_min(t_min)
    kernels.check_negatives(negatives)
    z, z_rows, cols, _, _, gram = kernels.dense_opening(
        z_a, z_b, images, "ORL's shuffled-tension control (at least one negative per anchor)"
    )  # gram: (2n, 2N)
    if detach_tension:
        t = kernels.tension_rows(z_rows.detach(), z.detach(), gram.detach(), cols, t_min)
    else:
        t = kernels.tension_rows(z_rows, z, gram, cols, t_min)
    shuffled = shuffle_negatives(t, cols, generator, negatives)
    return kernels.info_nce((gram * shuffled).div_(temperature), cols, negatives)


class ORLShuffledTensionLoss(TensionLoss):
    """ORL's shuffled-tension control: ORL with each anchor's tension values randomly permuted
    among that anchor's negatives, afresh at every call.

    ``L = mean_i [-sim(i, p(i)) / tau + logsumexp_{k != i} sim(i, k) T[i, pi_i(k)] / tau]``
    with ``pi_i`` a uniformly random permutation of the negatives of anchor i (``k != i,
    p(i)``) and ``T`` ORL's tension (``ORLLoss``, the orbit regularization write-up in
    ``docs/orl.md``); ``T[i, p(i)] = 1``. Each anchor keeps the multiset of its factors, so the
    average softening of the negatives, but which negative gets which factor is random: no
    geometry. An ORL result counts only beside it (``docs/orl.md``, "Known confound").

    ``detach_tension`` is true by default (``conf/loss/orl_shuffled_tension.yaml``): the
    gradient through a shuffled T would still move negative ``pi_i(k)`` along ORL's geometric
    force, scaled by negative k's softmax weight, bringing direction back into the control.
    Compare it with ``orl`` for the whole effect of the direction, and with ``orl_detached``
    (ORL with T detached) for the direction of the factors alone.

    The permutations come from torch's global generator (seeded by Lightning's
    ``seed_everything``, so a run is reproducible). With ``gather_distributed`` and a process
    group of W > 1 (DDP), each rank's anchors are contrasted with the embeddings of all ranks
    (``orbitcl.losses.gather``) and each rank shuffles its own rows: the mean of the ranks'
    losses is the global batch's loss for some draw of the permutations. (With the same seed on
    every rank, the ranks draw the same permutation pattern for their own, different rows.)

    ``negatives`` (``all``, ``cross_view``, ``within_view``): the negatives in each anchor's
    softmax, as for ``ORLLoss``; T is shuffled among those.
    """

    paper: ClassVar[str] = (
        "orbitcl's control for ORL: Contrastive Learning with Latent Tension Regularization for"
        " Tight Orbits (the ORL write-up)"
    )
    formula: ClassVar[str] = "orbitcl.losses.orl_shuffled_tension.orl_shuffled_tension"

    def __init__(
        self,
        temperature: float = 0.5,
        t_min: float = 1e-6,
        detach_tension: bool = True,
        gather_distributed: bool = False,
        negatives: str = "all",
    ) -> None:
        super().__init__(temperature, t_min, negatives, gather_distributed)
        self.detach_tension = detach_tension

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return orl_shuffled_tension(
            z_a,
            z_b,
            self.temperature,
            self.t_min,
            self.detach_tension,
            images=images,
            negatives=self.negatives,
        )

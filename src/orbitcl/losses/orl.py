"""The Orbit Regularization Loss (ORL) as a module."""

from typing import ClassVar

from torch import Tensor

from orbitcl.losses import functional, kernels
from orbitcl.losses.base import TensionLoss


class ORLLoss(TensionLoss):
    """Orbit Regularization Loss: NT-Xent with each negative logit scaled by its tension.

    ``L = mean_i [-sim(i, p(i)) / tau + logsumexp_{k != i} sim(i, k) T[i, k] / tau]``, where the
    tension ``T[i, k] = u_i . (z_k - z_i) / ||z_k - z_i||``, clamped to ``[t_min, 1]``, is the
    cosine between the anchor's direction to its positive, ``u_i = (z_p(i) - z_i) / ||...||``,
    and its direction to negative k; ``T[i, p(i)] = 1``. Negatives that lie along the
    anchor -> positive axis keep their full logit and so are pushed hardest; the others are
    damped towards logit 0. Gradients flow through T unless ``detach_tension``.

    With ``gather_distributed`` and a process group of W > 1 (DDP), each rank's anchors are
    contrasted with, and their tension computed against, the embeddings of all ranks, gathered
    with gradients (an anchor's positive is on its own rank): the mean of the ranks' losses is the
    loss on the global batch (``orbitcl.losses.gather``). Every rank must pass the same N.
    ``ContrastiveModule`` switches it on when the world size is > 1.

    Conventions, degenerate cases and the controls an ORL result needs: ``docs/orl.md``. Cost
    (``orbitcl.losses.kernels.blocked``): about NT-Xent's matmuls plus fused elementwise work, no
    (2N, 2N) matrix kept for the backward; from 2N = 4096 its kernels are compiled with
    torch.compile (once per process, eager where that fails; ``ORBITCL_LOSS_KERNELS=eager`` or
    ``compile`` overrides).

    ``negatives`` chooses the negatives in each anchor's softmax, as for ``NTXentLoss``
    (``all``, ``cross_view``, ``within_view``); the tension of those it keeps is unchanged.
    """

    paper: ClassVar[str] = (
        "Contrastive Learning with Latent Tension Regularization for Tight Orbits (the ORL "
        "write-up)"
    )
    formula: ClassVar[str] = "orbitcl.losses.functional.orl"

    def __init__(
        self,
        temperature: float = 0.5,
        t_min: float = 1e-6,
        detach_tension: bool = False,
        gather_distributed: bool = False,
        backend: str | None = None,
        negatives: str = "all",
    ) -> None:
        super().__init__(temperature, t_min, negatives, gather_distributed)
        if backend is not None:
            kernels.check_backend(backend)
        self.detach_tension = detach_tension
        self.backend = backend

    def compute(self, z_a: Tensor, z_b: Tensor, images: slice | None) -> Tensor:
        return functional.orl(
            z_a,
            z_b,
            self.temperature,
            self.t_min,
            self.detach_tension,
            images=images,
            backend=self.backend,
            negatives=self.negatives,
        )

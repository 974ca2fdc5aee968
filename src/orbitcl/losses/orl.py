"""The Orbit Regularization Loss (ORL) as a module."""

from torch import Tensor, nn

from orbitcl.losses import functional


class ORLLoss(nn.Module):
    """Orbit Regularization Loss: NT-Xent with each negative logit scaled by its tension.

    ``L = mean_i [-sim(i, p(i)) / tau + logsumexp_{k != i} sim(i, k) T[i, k] / tau]``, where the
    tension ``T[i, k] = u_i . (z_k - z_i) / ||z_k - z_i||``, clamped to ``[t_min, 1]``, is the
    cosine between the anchor's direction to its positive, ``u_i = (z_p(i) - z_i) / ||...||``,
    and its direction to negative k; ``T[i, p(i)] = 1``. Negatives that lie along the
    anchor -> positive axis keep their full logit and so are pushed hardest; the others are
    damped towards logit 0. Gradients flow through T unless ``detach_tension``.

    Conventions, degenerate cases and the controls an ORL result needs: ``docs/orl.md``.
    """

    def __init__(
        self,
        temperature: float = 0.5,
        t_min: float = 1e-6,
        detach_tension: bool = False,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        functional.check_temperature(temperature)
        functional.check_t_min(t_min)
        if gather_distributed:
            raise NotImplementedError(
                "gather_distributed=True is not implemented yet (see the DDP issue)"
            )
        self.temperature = temperature
        self.t_min = t_min
        self.detach_tension = detach_tension
        self.gather_distributed = gather_distributed

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Loss (a scalar) for projector outputs ``z_a``, ``z_b`` of shape (N, d), N >= 2."""
        return functional.orl(z_a, z_b, self.temperature, self.t_min, self.detach_tension)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, t_min={self.t_min}, "
            f"detach_tension={self.detach_tension}"
        )

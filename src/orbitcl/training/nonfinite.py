"""What to say when a loss is not finite: which step, which term, and what the embeddings
looked like, so that a diverging run can be diagnosed from its error message alone."""

import torch

from orbitcl.losses import functional


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite; raised before the optimiser step, so the weights and
    the last checkpoint stay finite."""


def embedding_report(z_a: torch.Tensor, z_b: torch.Tensor) -> str:
    """Norms, cosine range and tension range of one pair of (N, d) projector outputs."""
    z_a, z_b = z_a.detach().double(), z_b.detach().double()
    z = torch.cat([z_a, z_b])  # (2N, d)
    norms = z.norm(dim=1)
    finite_rows = torch.isfinite(z).all(dim=1)
    parts = [
        f"{int((~finite_rows).sum())} of {len(z)} embeddings non-finite",
        f"norms in [{norms.min():.3g}, {norms.max():.3g}]",
    ]
    if finite_rows.all():
        unit = torch.nn.functional.normalize(z, dim=1)
        cosine = unit @ unit.T
        off_diagonal = cosine[~torch.eye(len(z), dtype=torch.bool)]
        t = functional.tension(z_a, z_b)[~torch.eye(len(z), dtype=torch.bool)]
        parts += [
            f"cosine in [{off_diagonal.min():.4f}, {off_diagonal.max():.4f}]",
            f"tension in [{t.min():.3g}, {t.max():.3g}]",
        ]
    return ", ".join(parts)

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


class NonFiniteRecord:
    """What the device knows of the non-finite steps, kept without a host sync: how many there
    were, and the step, pair of views, value and projections of the first. Read on the host
    only when a decision or a log needs it.

    The flag of each step is agreed by every rank (``orbitcl.parallel.collectives.any_rank``)
    before it is recorded, so every rank holds the same count and decides the same.
    """

    def __init__(self) -> None:
        self.count: torch.Tensor | None = None  # () int64: non-finite steps so far, all ranks
        self.local: torch.Tensor | None = None  # () int64: those non-finite on this rank
        self._first: dict[str, torch.Tensor] = {}

    def record(
        self,
        bad: torch.Tensor,
        agreed: torch.Tensor,
        terms: torch.Tensor,
        zs,
        step: int,
        epoch: int,
        batch: int,
    ) -> None:
        """Counts a step whose flag is ``bad`` on this rank and ``agreed`` on some rank (each ()
        bool); ``terms`` (P,) its objective per pair of views, ``zs`` its V projections (B, d).
        Only device ops (fills, no host-to-device copy): ``torch.where`` keeps the values of
        this rank's first non-finite step."""
        where = torch.full((3,), step, dtype=torch.int64, device=bad.device)
        where[1], where[2] = epoch, batch  # fills
        if self.count is None:
            self.count = torch.zeros((), dtype=torch.int64, device=bad.device)
            self.local = torch.zeros_like(self.count)
            self._first = {
                "where": torch.full_like(where, -1),
                "pair": torch.zeros((), dtype=torch.int64, device=bad.device),
                "term": torch.zeros_like(terms[0]).float(),
                "zs": torch.zeros_like(torch.stack([z.detach() for z in zs])).float(),
            }
        first = bad & (self.local == 0)  # () bool: this rank's first non-finite step
        pair = (~torch.isfinite(terms)).to(torch.int64).argmax()  # the first bad pair, or 0
        current = {
            "where": where,
            "pair": pair,
            # index_select, not [pair]: a 0-dim index tensor is read on the host
            "term": terms.detach().index_select(0, pair.view(1)).squeeze(0).float(),
            "zs": torch.stack([z.detach() for z in zs]).float(),
        }
        for name, value in current.items():
            kept = self._first[name]
            if kept.shape != value.shape:  # a last, smaller batch: keep what fits the first
                continue
            self._first[name] = torch.where(first, value, kept)
        self.count = self.count + agreed.to(torch.int64)
        self.local = self.local + bad.to(torch.int64)

    def seen(self) -> int:
        """The number of non-finite steps so far, on any rank (a host sync)."""
        return 0 if self.count is None else int(self.count)

    def seen_here(self) -> bool:
        """Whether one of them was non-finite on this rank (a host sync)."""
        return self.local is not None and bool(self.local > 0)

    def message(self, loss_name: str, pairs: list[tuple[int, int]]) -> str:
        """The diagnosis of the first non-finite step (host syncs: called once, to stop)."""
        step, epoch, batch = (int(x) for x in self._first["where"])
        a, b = pairs[int(self._first["pair"])]
        zs = self._first["zs"]
        return (
            f"Non-finite loss at step {step} (epoch {epoch}, batch {batch}): {loss_name} on "
            f"views ({a}, {b}) = {float(self._first['term'])}; embeddings: "
            f"{embedding_report(zs[a], zs[b])}"
        )

"""What makes a killed run resumable, exactly: each epoch seeded from (seed, epoch), and the
run's config stored in its checkpoints so that a resume with a different config is refused; a
checkpoint that cannot be resumed (truncated, of another experiment, not a checkpoint) stops the
run before anything is written, naming the newest checkpoint beside it that would load."""

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from orbitcl.training.config import ConfigError

# Config keys that may change when a run is resumed: how long and where it runs, what it logs,
# how data is read. Everything else (model, loss, optimiser, data and augmentation, seed) must
# match the checkpoint, or the resumed run would silently be a different experiment.
MAY_CHANGE_ON_RESUME = (
    "trainer.",
    "logger.",
    "callbacks.",
    "eval.",
    "hydra.",
    "study",  # what a sweep's report tests (experiments.report.claims), not the training
    "dataset.data_dir",
    "dataset.root",  # an image folder, moved
    "dataset.download",
    "dataset.num_workers",
    "dataset.eval_batch_size",
    "dataset.pin_memory",
    "model.channels_last",  # speed switches: the same computation, up to float rounding
    "model.compile",
    "model.float32_matmul_precision",
    "loss.backend",  # ORL's elementwise kernels: the same numbers, up to float rounding
)


class EpochSeed(L.Callback):
    """Seeds Python, NumPy and torch at the start of every training epoch from (seed, epoch,
    rank).

    The epoch's data order, the seeds of its DataLoader workers and its augmentations are then a
    function of (seed, epoch, rank) alone, so a run resumed from the checkpoint of epoch e replays
    epoch e + 1 exactly as an uninterrupted run does. The rank is in the seed so that the ranks
    of a DDP run draw different augmentations.

    Lightning creates the first epoch's DataLoader iterator (drawing the sampler's and workers'
    seeds) *before* `on_train_epoch_start`, so a resumed run is seeded earlier, when this
    callback's state is loaded, and that epoch is not seeded twice.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._rank = 0
        self._epoch = 0  # the epoch in progress
        self._seeded_epoch: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._rank = trainer.global_rank  # runs before the checkpoint's state is loaded

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch
        if self._seeded_epoch != self._epoch:
            self._seed_epoch(self._epoch)

    def state_dict(self) -> dict[str, int]:
        # Checkpoints are written at the end of an epoch: a resume starts the next one.
        return {"next_epoch": self._epoch + 1}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._seed_epoch(state_dict["next_epoch"])

    def _seed_epoch(self, epoch: int) -> None:
        # SeedSequence mixes the triple: (seed 0, epoch 1) and (seed 1, epoch 0) differ.
        entropy = [self.seed, epoch, self._rank]
        epoch_seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)
        self._seeded_epoch = epoch


class ConfigSnapshot(L.Callback):
    """Stores the run's resolved config in every checkpoint (under `callbacks/ConfigSnapshot`)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config}


def stored_config(checkpoint_path: Path) -> dict[str, Any] | None:
    """The config a checkpoint was written with, read without executing code from it (None if
    it holds none). Raises ValueError if the file is not a Lightning checkpoint, and what
    `torch.load` raises if it cannot be read."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= checkpoint.keys():
        raise ValueError("not a Lightning checkpoint (no state_dict and global_step)")
    return checkpoint.get("callbacks", {}).get(ConfigSnapshot.__qualname__, {}).get("config")


def resume_problem(checkpoint: Path, config: dict[str, Any]) -> str | None:
    """Why the run of `config` cannot resume from `checkpoint`, or None if it can."""
    try:
        stored = stored_config(checkpoint)
    except Exception as err:  # torch.load of a truncated or foreign file raises many kinds
        first = str(err).strip().split(". ")[0]  # torch's advice for the file follows it
        return f"cannot be read ({err.__class__.__name__}: {first})"
    if stored is None:
        return "holds no orbitcl config: it was not written by an orbitcl run"
    differences = config_differences(stored, config, MAY_CHANGE_ON_RESUME, "checkpoint")
    if differences:
        return "was written by a run with a different config:\n" + "\n".join(differences)
    return None


def check_resumable(last: Path, config: dict[str, Any]) -> None:
    """Raises ConfigError, before anything is written, if the run of `config` cannot resume from
    `last`: naming it, why, and the newest other checkpoint in its folder that it could resume
    from (or that there is none)."""
    problem = resume_problem(last, config)
    if problem is None:
        return
    others = sorted(
        (p for p in last.parent.glob("*.ckpt") if p != last and p.is_file()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    usable = next((p for p in others if resume_problem(p, config) is None), None)
    if usable is not None:
        instead = (
            f"{usable.name} in {last.parent} would load: copy it over {last.name} to resume from "
            f"it (cp {usable} {last})"
        )
    else:
        instead = f"no other checkpoint in {last.parent} would load"
    raise ConfigError(
        f"{last} {problem}\nso this run cannot resume from it, and nothing was written. "
        f"{instead}; or move {last.name} away to start from scratch, or start a new run directory "
        "(hydra.run.dir=...)."
    )


def config_differences(
    stored: dict[str, Any], current: dict[str, Any], may_change: tuple[str, ...], where: str
) -> list[str]:
    """One line per key whose value differs between two resolved configs (nested dicts), except
    keys starting with one of `may_change`: `  key: OLD in the WHERE, NEW now`."""
    old, new = _flatten(stored), _flatten(current)
    return [
        f"  {key}: {old.get(key, '<absent>')!r} in the {where}, {new.get(key, '<absent>')!r} now"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key) and not key.startswith(may_change)
    ]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {
            k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): tree}

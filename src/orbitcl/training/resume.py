"""What makes a killed run resumable, exactly: each epoch seeded from (seed, epoch), and the
run's config and length stored in its checkpoints so that a resume with a different config, or
of another length where a schedule depends on it, is refused; a checkpoint that cannot be resumed
(truncated, of another experiment, not a checkpoint) stops the run before anything is written,
naming the newest checkpoint beside it that would load."""

import logging
import math
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from orbitcl.training.config import ConfigError

log = logging.getLogger(__name__)

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

# Keys added to existing configs after resume checking began, each with the value that does what
# the code did before the key existed: a stored config without such a key counts as holding that
# value, so that older checkpoints still resume. A key goes here only if its default reproduces
# the older computation exactly (not, say, rotated MNIST's own mean and std, which replaced
# MNIST's); a stored value that differs, or a current value other than this one, is still refused.
ADDED_LATER: dict[str, Any] = {
    "loss.momentum_schedule": "constant",  # MoCo (8b7600c): its EMA rate was always constant
    "loss.negatives": "all",  # NT-Xent, ORL and its controls (fc28859): SimCLR's k != i
    "loss.num_classes": None,  # SupCon, Soft SupCon (0011937): None, the classes from the labels
    "optim.lr_scaling": "none",  # AdamW (d5ddf56): optimizer.lr as given
    "dataset.imbalance_ratio": 1,  # MNIST, CIFAR-10 (27161c8): 1 and no class_counts, the whole
    "dataset.class_counts": None,  # train split (subset_seed then draws nothing)
    "dataset.subset_seed": 0,
}


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
    """Stores the run's resolved config and its length in every checkpoint (under
    `callbacks/ConfigSnapshot`), and stops a resume whose length would change a schedule.

    The length is K, the trainer's `estimated_stepping_batches`: the optimiser steps of the whole
    run, from `trainer.max_steps`, `max_epochs`, `limit_train_batches`,
    `accumulate_grad_batches`, the devices, the batch size and the data. The learning-rate
    schedule and a cosine momentum schedule (BYOL's target network) are functions of K, and a
    checkpoint keeps their step, not K: a resume with another K would go on along another
    schedule than the one the run started on. The module says which of its schedules depend on K
    (`ContrastiveModule.schedules_over_run`); where one does, a resumed run whose K differs stops
    with a ConfigError in `on_fit_start`, when K is first known and before the first optimiser
    step and any checkpoint or metric is written. A checkpoint from before K was stored is
    resumed unchecked, and the log says so.
    """

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.stepping_batches: float | None = None  # K: known once the trainer is fitting
        self._resumed: dict[str, Any] | None = None  # the checkpoint's state, on a resume

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Most strategies restore callbacks before on_fit_start, some after: checked at the later.
        self._resumed = checkpoint.get("callbacks", {}).get(self.state_key, {})
        self._check_length(trainer, pl_module)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stepping_batches = trainer.estimated_stepping_batches
        self._check_length(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config, "stepping_batches": self.stepping_batches}

    def _check_length(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._resumed is None or self.stepping_batches is None:
            return
        resumed, self._resumed = self._resumed, None  # checked once
        if resumed.get("stepping_batches") is None:
            if trainer.is_global_zero:
                log.warning(
                    "%s was written before checkpoints stored the run's length (K optimiser "
                    "steps): that this resume keeps the run's schedules (K=%s now) cannot be "
                    "checked",
                    trainer.ckpt_path,
                    _steps(self.stepping_batches),
                )
            return
        schedules = getattr(pl_module, "schedules_over_run", ())
        problem = length_problem(
            resumed, self.config, self.stepping_batches, schedules, trainer.ckpt_path
        )
        if problem is not None:
            raise ConfigError(problem)


def length_problem(
    resumed: dict[str, Any],
    config: dict[str, Any],
    stepping_batches: float,
    schedules: tuple[str, ...],
    checkpoint: Any,
) -> str | None:
    """Why a run of `stepping_batches` (K) optimiser steps cannot resume from a checkpoint whose
    ConfigSnapshot state is `resumed`, or None if it can: K is the same, or no schedule of the
    run depends on it."""
    stored = resumed["stepping_batches"]
    if stored == stepping_batches or not schedules:
        return None
    changed = config_differences(resumed.get("config") or {}, config, (), "checkpoint")
    keys = [line for line in changed if line.lstrip().startswith(("trainer.", "dataset."))]
    what = "\n".join(keys) if keys else "  (no trainer key: the devices or the data changed)"
    return (
        f"{checkpoint} was written by a run of K={_steps(stored)} optimiser steps, and this run "
        f"would have K={_steps(stepping_batches)}:\n{what}\n"
        f"{' and '.join(schedules)} "
        f"{'is a function of K, so it' if len(schedules) == 1 else 'are functions of K, so they'}"
        " would change mid-run. Nothing was written. Resume with the original length (the "
        "checkpoint's trainer settings); to train longer, start a new run (another "
        "hydra.run.dir=...)."
    )


def _steps(k: float) -> str:
    return "inf" if not math.isfinite(k) else str(int(k))


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
    keys starting with one of `may_change`: `  key: OLD in the WHERE, NEW now`. A key of
    ADDED_LATER missing from `stored` counts as holding its value there."""
    old, new = _flatten(stored), _flatten(current)
    implied = {key: value for key, value in ADDED_LATER.items() if key in new and key not in old}
    old |= implied

    def shown(values: dict[str, Any], key: str) -> str:
        if key in implied and values is old:
            return f"absent (so {implied[key]!r})"
        return repr(values.get(key, "<absent>"))

    return [
        f"  {key}: {shown(old, key)} in the {where}, {shown(new, key)} now"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key) and not key.startswith(may_change)
    ]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {
            k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): tree}

"""The run's logger, started when training starts: after the checks that need a fitting trainer
(a resume's length, orbitcl.training.resume.ConfigSnapshot), so that a run they refuse starts no
W&B run and writes no CSV or TensorBoard file (a fresh CSV logger's start would replace the run
directory's metrics.csv); on an accepted resume the CSV logger is told the checkpoint's step
first, and continues the file (orbitcl.tracking.csv_logger)."""

from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger


class StartLogger(L.Callback):
    """Builds the logger with `build()` in `on_fit_start`, logs `hyperparameters` to it and puts
    it first among the trainer's loggers (`trainer.logger`), before any metric is logged. Place
    it after the callbacks whose `on_fit_start` may refuse the run. (A strategy that restores a
    checkpoint after its setup, such as DeepSpeed's, checks a resume after `on_fit_start`: the
    logger has started by then. orbitcl's trainer presets, one device and DDP, restore before.)"""

    def __init__(self, build: Callable[[], Logger], hyperparameters: dict[str, Any]):
        self.build = build
        self.hyperparameters = hyperparameters
        self.logger: Logger | None = None
        self._resume_step: int | None = None  # the checkpoint's global step, on a resume

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._resume_step = checkpoint["global_step"]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.logger is None:
            self.logger = self.build()
            # A logger that can continue a resumed run's files (ResumableCSVLogger) is told where
            # the checkpoint is, before it writes anything; W&B continues by its run id.
            if self._resume_step is not None and hasattr(self.logger, "resume_at"):
                self.logger.resume_at(self._resume_step)
            self.logger.log_hyperparams(self.hyperparameters)
        trainer.loggers = [self.logger, *(lg for lg in trainer.loggers if lg is not self.logger)]

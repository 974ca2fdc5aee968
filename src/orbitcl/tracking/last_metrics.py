"""The last value of every scalar metric a run logged: a run's final metrics, whichever logger
the user chose (W&B, CSV or none)."""

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only


class LastMetrics(Logger):
    """A Lightning logger that keeps, for each metric name, the last scalar it was given.

    It receives what every logger receives: `LightningModule.log` values (at the logging steps
    and after each validation) and what the diagnostics write to the loggers directly
    (`tension/*`, which never reach `trainer.callback_metrics`). Histograms and images are
    ignored. Rank zero only, like every logger.
    """

    def __init__(self):
        super().__init__()
        self.metrics: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "last_metrics"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.metrics |= _scalars(metrics)

    def final(self, trainer: L.Trainer) -> dict[str, float]:
        """The run's final metrics: what was logged, updated with the last value of each metric
        given to `LightningModule.log` (`trainer.callback_metrics`): a run shorter than
        `trainer.log_every_n_steps` sends no step metric such as `train/loss` to the loggers."""
        return self.metrics | _scalars(trainer.callback_metrics)


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of `metrics` that are one number (a histogram or an image is not)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out

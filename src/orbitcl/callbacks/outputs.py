"""Where the diagnostics' outputs go: PNGs under `<run dir>/plots/` (the run dir being the
trainer's `default_root_dir`), and histograms and images to W&B when a WandbLogger is attached.

Only global rank zero should call these: plots are written once, and loggers write on rank zero
only anyway.
"""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from matplotlib.figure import Figure

from orbitcl.tracking import plots


def save_plot(trainer: L.Trainer, fig: Figure, name: str, wandb_key: str) -> Path:
    """Writes `fig` to `<run dir>/plots/<name>` and, under W&B, logs it as image `wandb_key`."""
    path = plots.save(fig, Path(trainer.default_root_dir) / "plots" / name)
    for logger in wandb_loggers(trainer):
        logger.log_image(wandb_key, [str(path)], step=trainer.global_step)
    return path


def log_scalars(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    """Writes `metrics` to every logger at the current global step, now.

    For diagnostics computed every N steps: `LightningModule.log` would only reach the loggers
    at steps that are multiples of `trainer.log_every_n_steps`, and drop the others.
    """
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)


def log_histogram(
    trainer: L.Trainer, key: str, values: torch.Tensor, bins: int, low: float, high: float
) -> None:
    """Logs a W&B histogram of `values` (any shape) over [low, high], if W&B is attached; values
    outside the range count in the first or last bin.

    Binned where the values are (e.g. on the GPU): only `bins` counts travel to the CPU, not the
    2N(2N-2) tension values of a batch.
    """
    loggers = wandb_loggers(trainer)
    if not loggers:
        return
    import wandb

    # histc drops values outside [low, high]: a cosine rounded to 1 + 1e-7 would go missing.
    values = values.detach().float().clamp(low, high)
    counts = torch.histc(values, bins=bins, min=low, max=high).cpu().numpy()
    edges = np.linspace(low, high, bins + 1)
    for logger in loggers:
        histogram = wandb.Histogram(np_histogram=(counts, edges))
        logger.log_metrics({key: histogram}, step=trainer.global_step)


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]

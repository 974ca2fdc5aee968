"""Where the diagnostics' outputs go: PNGs under `<run dir>/plots/` (the run dir being the
trainer's `default_root_dir`), and histograms and images to the dashboards attached: W&B
(`WandbLogger`) and TensorBoard (`TensorBoardLogger`) alike, under the same keys.

Only global rank zero should call these: plots are written once, and loggers write on rank zero
only anyway.
"""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from matplotlib.image import imread

from orbitcl.tracking import plots


def save_plot(trainer: L.Trainer, fig: Figure, name: str, key: str) -> Path:
    """Writes `fig` to `<run dir>/plots/<name>` and logs it as image `key` to the dashboards."""
    path = plots.save(fig, Path(trainer.default_root_dir) / "plots" / name)
    for logger in dashboards(trainer, WandbLogger):
        logger.log_image(key, [str(path)], step=trainer.global_step)
    for logger in dashboards(trainer, TensorBoardLogger):
        rgb = imread(path)[..., :3]  # (H, W, 3) floats in [0, 1]; the PNG's alpha dropped
        logger.experiment.add_image(key, rgb, trainer.global_step, dataformats="HWC")
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
    """Logs a histogram of `values` (any shape) over [low, high] to the dashboards; values
    outside the range count in the first or last bin.

    Binned where the values are (e.g. on the GPU): only `bins` counts and two sums travel to the
    CPU, not the 2N(2N-2) tension values of a batch.
    """
    wandb_loggers = dashboards(trainer, WandbLogger)
    tensorboard_loggers = dashboards(trainer, TensorBoardLogger)
    if not wandb_loggers and not tensorboard_loggers:
        return
    # histc drops values outside [low, high]: a cosine rounded to 1 + 1e-7 would go missing.
    values = values.detach().float().clamp(low, high)
    counts = torch.histc(values, bins=bins, min=low, max=high).cpu().numpy()
    edges = np.linspace(low, high, bins + 1)
    if wandb_loggers:
        import wandb

        for logger in wandb_loggers:
            histogram = wandb.Histogram(np_histogram=(counts, edges))
            logger.log_metrics({key: histogram}, step=trainer.global_step)
    for logger in tensorboard_loggers:
        logger.experiment.add_histogram_raw(
            key,
            min=float(values.min()),
            max=float(values.max()),
            num=values.numel(),
            sum=float(values.sum()),
            sum_squares=float(values.square().sum()),
            bucket_limits=edges[1:].tolist(),  # each bucket's right edge
            bucket_counts=counts.tolist(),
            global_step=trainer.global_step,
        )


def dashboards(trainer: L.Trainer, kind: type) -> list:
    """The trainer's loggers of `kind` (WandbLogger, TensorBoardLogger)."""
    return [logger for logger in trainer.loggers if isinstance(logger, kind)]

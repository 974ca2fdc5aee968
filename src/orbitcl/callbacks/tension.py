"""Tension monitor: how ORL's tension is distributed over the negatives of training batches."""

import lightning as L
import torch

from orbitcl.callbacks import names
from orbitcl.callbacks.outputs import log_histogram, log_scalars, save_plot
from orbitcl.callbacks.requirements import DataNeeds, tension_applies
from orbitcl.checks.numbers import require_int
from orbitcl.losses import functional
from orbitcl.metrics import geometry
from orbitcl.tracking import plots


class TensionMonitor(L.Callback):
    """Every `every_n_steps` optimisation steps, on the training batch just used: logs
    `tension/mean`, `tension/median`, `tension/p05`, `tension/p95` and `tension/clamped_frac`
    (the share of negatives at `t_min`) over the batch's negatives, and under W&B the histogram
    `tension/hist`. At the end of each training epoch, the histogram of the epoch's last batch
    goes to `plots/tension_stepNNNNNN.png` (and W&B image `tension/hist_plot`).

    Tension is defined for any pair of views, so this works with any loss that contrasts
    negatives: with NT-Xent it shows what ORL *would* weight. A loss without negatives (SimSiam,
    BYOL, VICReg, Barlow Twins) has nothing for it to weigh: the monitor then says so once, when
    training starts, and measures nothing (``requirements.tension_applies``).

    It reads the detached projections that `ContrastiveModule.training_step` returns (first two
    views), so it costs one (2N, 2N) elementwise pass on a Gram matrix, no forward pass. Rank
    zero only; under DDP it measures rank zero's share of the global batch (the loss itself sees
    all of it).
    """

    needs = DataNeeds()  # the training batch alone: runs on any data

    def __init__(self, every_n_steps: int = 50, t_min: float = 1e-6, bins: int = 50):
        super().__init__()
        require_int("every_n_steps", every_n_steps, 1)
        functional.check_t_min(t_min)
        self.every_n_steps = every_n_steps
        self.t_min = t_min
        self.bins = bins
        self._last_projections: tuple[torch.Tensor, torch.Tensor] | None = None
        self._last_logged_step = -1
        self._applies: bool | None = None  # to the module's loss: decided once, at setup

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self._applies is None:  # setup runs again for a validation after fit: one line
            self._applies = tension_applies("the tension monitor (TensionMonitor)", pl_module.loss)

    def _negatives(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return geometry.tension_negatives(functional.tension(z_a, z_b, self.t_min))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero or self._applies is False:
            return
        z_a, z_b = outputs["projections"][:2]  # (B, d) each, detached
        self._last_projections = (z_a, z_b)  # references only: the epoch-end plot uses them
        step = trainer.global_step  # already counts this batch's optimisation step
        # With gradient accumulation several batches share a step: the first one is measured.
        if step % self.every_n_steps != 0 or step == self._last_logged_step:
            return
        self._last_logged_step = step
        negatives = self._negatives(z_a, z_b)  # (2B(2B-2),)
        summary = geometry.tension_summary(negatives, self.t_min)
        log_scalars(trainer, {names.tension_metric(k): v for k, v in summary.items()})
        log_histogram(trainer, "tension/hist", negatives, self.bins, 0.0, 1.0)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self._last_projections is None:
            return
        negatives = self._negatives(*self._last_projections)
        epoch = trainer.current_epoch
        title = f"tension of negatives, last batch of epoch {epoch} (step {trainer.global_step})"
        fig = plots.tension_histogram(negatives, self.t_min, title, self.bins)
        save_plot(trainer, fig, f"tension_step{trainer.global_step:06d}.png", "tension/hist_plot")
        self._last_projections = None

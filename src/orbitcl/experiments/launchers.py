"""The shape of a sweep's SLURM jobs, checked where the sweep is launched (a login node) before
anything is submitted: a mismatch would otherwise show only inside the job (Lightning refuses
devices that differ from the tasks per node), after it has waited in the queue.

Under `hydra/launcher=slurm` (hydra-submitit-launcher) a job has `nodes` x `tasks_per_node`
tasks, one per GPU; each runs the job, and Lightning's SLURM environment makes them the ranks of
one DDP run. So `trainer.devices` must be the number of tasks per node (or -1: every GPU SLURM
gave the task's node) and `trainer.num_nodes` the number of nodes.
"""

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from orbitcl.training.config import ConfigError

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def check_slurm_jobs(config: DictConfig) -> None:
    """Raises ConfigError naming the field, the value and what is allowed when the SLURM job's
    shape and the trainer's disagree; does nothing under other launchers."""
    launcher = config.hydra.launcher
    if OmegaConf.select(launcher, "_target_") != SLURM_LAUNCHER:
        return
    gpus, tasks, nodes = launcher.gpus_per_node or 0, launcher.tasks_per_node, launcher.nodes
    if gpus and tasks != gpus:
        raise ConfigError(
            f"hydra.launcher.tasks_per_node={tasks} is invalid: must equal "
            f"hydra.launcher.gpus_per_node={gpus} (one task, one DDP process, per GPU)"
        )
    devices = OmegaConf.select(config, "trainer.devices")
    if isinstance(devices, int) and devices not in (-1, tasks):
        raise ConfigError(
            f"trainer.devices={devices} is invalid with hydra.launcher.tasks_per_node={tasks}: "
            f"must be {tasks} or -1 (Lightning runs one process per SLURM task)"
        )
    num_nodes = OmegaConf.select(config, "trainer.num_nodes", default=1)
    if num_nodes != nodes:
        raise ConfigError(
            f"trainer.num_nodes={num_nodes} is invalid with hydra.launcher.nodes={nodes}: "
            f"must be {nodes}"
        )


class CheckLauncher(Callback):
    """Hydra callback: stops a sweep whose jobs could not run (exit status 2) before its
    launcher submits them."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_slurm_jobs(config)
        except ConfigError as err:  # SystemExit: Hydra turns a callback's errors into warnings
            print(f"orbitcl: error: {err}", file=sys.stderr)
            sys.exit(2)

"""Optuna's Hydra sweeper (hydra-optuna-sweeper) as orbitcl runs it (`hparams_search=optuna`),
with one change: a study in which no trial finished ends like any sweep with failed jobs, with
its report and exit status 1, not with a traceback.

Each trial is a job of the sweep (`orbitcl.training.job.run_job`): it returns the final
val/knn_acc, or None when it failed, which the plugin tells Optuna as a failed trial. Once all
trials ran, the plugin asks Optuna for the best trial, and Optuna raises when there is none.

Hydra instantiates sweepers only from the `hydra_plugins` namespace package, hence this module
outside `orbitcl`. Hydra imports every module there at start-up, so without the optional
plugin installed (`orbitcl[optuna]`) this one defines nothing, rather than failing.
"""

import logging
from typing import Any

try:  # the module, not its class: Hydra registers every plugin class a module holds
    from hydra_plugins.hydra_optuna_sweeper import optuna_sweeper
except ImportError:
    optuna_sweeper = None

log = logging.getLogger(__name__)

NO_TRIAL_FINISHED = "No trials are completed yet"  # Optuna's study.best_trial, when none finished

if optuna_sweeper is not None:

    class OrbitclOptunaSweeper(optuna_sweeper.OptunaSweeper):
        def sweep(self, arguments: list[str]) -> Any:
            try:
                return super().sweep(arguments)
            except ValueError as err:
                if NO_TRIAL_FINISHED not in str(err):
                    raise
                log.warning("No trial finished, so there is no best trial: see the sweep report")
                return None

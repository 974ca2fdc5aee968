"""The end of a sweep, `python -m orbitcl.train -m loss=ntxent,orl loss.temperature=0.1,0.2
seed=0,1`: each job records its outcome (`orbitcl.training.job`), and the sweep ends with a
report.

- `SweepReport` (a Hydra callback, conf/train.yaml) checks the sweep's `study:` and saves the
  sweep's config (`multirun.yaml`) when it starts, and when it ends writes the report
  (orbitcl.report; with a study, its comparisons, claims and figures) into the sweep directory,
  logs it to W&B as tables and images in one more run of the group (job type
  `sweep-report`), and exits with status 1 if any job failed.

This happens in the process that launched the sweep, so it works the same under every Hydra
launcher (one process, joblib, submitit locally or on SLURM) and sweeper (the grid, Optuna).
"""

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

# Registers the ${sweep:...} resolver that the logger config read here (`log_to_wandb`) uses.
import orbitcl.training.job  # noqa: F401
from orbitcl.experiments import report
from orbitcl.training.swept_keys import MULTIRUN_FILE, swept_choices

log = logging.getLogger(__name__)

REPORT_RUN = "sweep-report"  # the W&B job type and name of the run that holds the report


class SweepReport(Callback):
    """Hydra callback: when a sweep ends, writes its report into the sweep directory (and W&B),
    prints it, and exits with status 1 if any job did not finish. ``x`` and ``metrics`` choose
    the plots' axis and the columns (``hydra.callbacks.sweep_report.x=...``, as a preset does)."""

    def __init__(self, x: str = report.X_KEY, metrics: Sequence[str] = report.METRICS) -> None:
        self.x = x
        self.metrics = list(metrics)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Checks the sweep's `study:` (exit status 2 on a bad one, before any job), and saves
        the sweep's config as `multirun.yaml`, where the jobs and the report read the swept keys
        and the study: Hydra's grid sweeper saves it too (the same config), Optuna's does not."""
        study = OmegaConf.select(config, "study")
        try:  # on every rank: under DDP the others would go on to the jobs without rank zero
            report.parse_study(
                None if study is None else OmegaConf.to_container(study, resolve=True),
                swept_choices(config),
            )
        except report.StudyError as err:
            print(f"orbitcl: error: {err}", file=sys.stderr)
            sys.exit(2)
        if rank_zero_only.rank != 0:
            return
        directory = Path(config.hydra.sweep.dir)
        directory.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, directory / MULTIRUN_FILE)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:  # DDP: the other ranks walk the same jobs
            return
        directory = Path(config.hydra.sweep.dir)
        try:
            result = report.build_report(directory, self.metrics, self.x)
        except Exception:  # Hydra would turn it into a warning and exit 0
            log.exception("the sweep report could not be written")
            sys.exit(1)
        print((directory / "sweep_report.md").read_text())
        print(f"sweep report: {directory / 'sweep_report.md'} (and .csv, plots)")
        if OmegaConf.select(config, "logger._target_") == "orbitcl.tracking.loggers.wandb_logger":
            try:
                log_to_wandb(result, directory, config.logger)
            except Exception as err:  # W&B never fails a sweep that trained
                log.warning("the sweep report was not logged to W&B: %s", err)
        if result.failed:
            print(
                f"orbitcl: {len(result.failed)} of {len(result.jobs)} jobs did not finish: "
                + ", ".join(job["job"] for job in result.failed),
                file=sys.stderr,
            )
            sys.exit(1)


def log_to_wandb(result: report.Report, directory: Path, logger_cfg: DictConfig) -> None:
    """Logs the report as W&B tables (`sweep/jobs`, `sweep/summary`) and images in one run of
    the sweep's group, with files under `<sweep dir>/wandb/`."""
    import wandb  # only a sweep that logs to W&B imports it

    from orbitcl.tracking.loggers import wandb_logger

    group = OmegaConf.select(logger_cfg, "group") or directory.name
    logger = wandb_logger(
        save_dir=str(directory),
        project=logger_cfg.project,
        name=REPORT_RUN,
        group=group,
        job_type=REPORT_RUN,
        entity=OmegaConf.select(logger_cfg, "entity"),
    )
    tables = {"sweep/jobs": result.jobs, "sweep/summary": result.summary}
    logged = {key: _table(rows) for key, rows in tables.items()}
    comparisons = result.evidence.comparisons if result.evidence else []
    if comparisons:
        logged["sweep/comparisons"] = _table([c.as_row() for c in comparisons])
    logged |= {f"sweep/{p.stem}": wandb.Image(str(p)) for p in result.images}
    logger.experiment.log(logged)
    wandb.finish()


def _table(rows: list[dict]) -> "wandb.Table":  # noqa: F821 -- imported where it is called
    import wandb

    columns = list(rows[0])
    values = [[_plain(row[c]) for c in columns] for row in rows]
    return wandb.Table(columns=columns, data=values)


def _plain(value: Any) -> Any:
    """Lists (a swept list value) as text: a table column holds one type."""
    return json.dumps(value) if isinstance(value, list | dict) else value

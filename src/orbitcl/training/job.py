"""One job of a sweep (`python -m orbitcl.train -m ...`): it records its outcome, and a failing
job does not stop the others (`orbitcl.experiments.sweep` reports the sweep when it ends).

- Each job runs in its own directory (`<sweep dir>/<num>_<overrides>/`) and leaves
  `result.json` there (`run_job`): status `ok` or `failed`, the error and the exit code a single
  run would have had (2: bad config or data, 3: non-finite loss, 1: anything else), the swept
  values, the final value of every logged metric and the wall time. Its W&B run is finished in
  every case, as failed (exit code != 0) when the job failed.
- W&B (conf/logger/wandb.yaml): `${sweep:group}` is the sweep's name (its directory's), shared
  by all its runs; `${sweep:name,DEFAULT}` the job's swept values (`loss=orl,seed=1`), and
  `${sweep:swept}` the same as a mapping, for the run's config. Outside a sweep they give
  DEFAULT (None when not given): group null, the usual name.
- A sweep resumes: run the same command again with the same `hydra.sweep.dir`, and a job whose
  `result.json` says `ok` for the same config is skipped (its files are left as they are), while
  the others run again; an interrupted one resumes from its own `last.ckpt`
  (orbitcl.training.fit). The config is compared with the one `result.json` recorded, as a
  single run's resume compares it with the checkpoint's: Hydra has rewritten the job's
  `.hydra/config.yaml` by the time the job starts.

All of this happens inside each job, so it works the same under every Hydra launcher (one
process, joblib, submitit locally or on SLURM) and sweeper (the grid, Optuna).
"""

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from orbitcl.callbacks import names
from orbitcl.data import DataNotFoundError
from orbitcl.tracking.loggers import finish_wandb
from orbitcl.training.config import ConfigError
from orbitcl.training.nonfinite import NonFiniteLossError
from orbitcl.training.resume import config_differences
from orbitcl.training.swept_keys import RESULT_FILE, job_values, label, swept_keys

log = logging.getLogger(__name__)

# Keys in which a finished job's recorded config may differ from this run's and the job still
# counts as done: where the data and the logs are, how the data is read. Any other difference (a
# longer schedule, a changed default) runs the job again, resuming from its last.ckpt where
# orbitcl.training.resume allows it and failing with the list of differences where not.
MAY_DIFFER_WHEN_DONE = (
    "logger",
    "study",  # what the report tests, not how a job trains
    "dataset.data_dir",
    "dataset.download",
    "dataset.num_workers",
    "dataset.pin_memory",
)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_dir() -> Path:
    """This sweep's directory, absolute: a relative `hydra.sweep.dir` is relative to where the
    command was started (the job may have changed directory)."""
    hydra = HydraConfig.get()
    return Path(hydra.runtime.cwd) / hydra.sweep.dir


def swept_values() -> dict[str, Any]:
    """This job's values of the keys the sweep varies, e.g. `{"loss": "orl", "seed": 1}`."""
    return job_values(HydraConfig.get().overrides.task, swept_keys(sweep_dir()))


def _resolve(what: str, default: Any = None) -> Any:
    if not in_multirun():
        return default
    if what == "group":
        return sweep_dir().name
    if what == "swept":
        return swept_values()
    if what == "name":
        return label(swept_values()) or default
    raise ValueError(f"${{sweep:{what}}} is invalid: must be group, name or swept")


OmegaConf.register_new_resolver("sweep", _resolve, replace=True)


def exit_code(err: BaseException) -> int:
    """The exit code a single run ends with on `err` (see orbitcl.training.fit.run)."""
    if isinstance(err, ConfigError | DataNotFoundError):
        return 2
    if isinstance(err, NonFiniteLossError):
        return 3
    return 130 if isinstance(err, KeyboardInterrupt) else 1


def run_job(
    train: Callable[[DictConfig, Path], dict[str, float]], cfg: DictConfig, run_dir: Path
) -> float | None:
    """Runs `train(cfg, run_dir)` as one job of a sweep, and records its outcome in
    `run_dir/result.json`. Nothing is raised to Hydra, whose sweeper would stop the sweep at the
    first failed job; Ctrl-C (KeyboardInterrupt) is recorded and does stop it. A job that
    finished before with this config is skipped (`finished_result`). Returns the final kNN
    accuracy (the objective an Optuna sweep maximises), None if the job failed."""
    start = time.perf_counter()
    hydra = HydraConfig.get()
    done = finished_result(run_dir, cfg)
    if done is not None:
        # Printed, not logged: the job's train.log is the finished run's and stays as it was.
        print(f"job {hydra.job.num} finished before with this config: skipped ({run_dir})")
        return done["metrics"].get(names.KNN_ACC)
    result = {
        "status": "failed",
        "error": None,
        "exit_code": 1,
        "job_num": hydra.job.num,
        "swept": swept_values(),
        "overrides": list(hydra.overrides.task),
        "metrics": {},
        "wall_time_s": None,
        "config": None,  # resolved; what a rerun of the sweep compares its own with
    }
    try:
        result["config"] = OmegaConf.to_container(cfg, resolve=True)
        result["metrics"] = train(cfg, run_dir)
        result.update(status="ok", exit_code=0)
    except BaseException as err:
        result.update(error=f"{err.__class__.__name__}: {err}", exit_code=exit_code(err))
        if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit: stop the sweep
            result["status"] = "interrupted"
            raise
        if result["exit_code"] == 1:  # unexpected: the traceback, to the log and train.log
            log.exception("job %d failed; the sweep goes on", hydra.job.num)
        else:
            print(f"orbitcl: error: {err}", file=sys.stderr)
    finally:
        result["wall_time_s"] = time.perf_counter() - start
        finish_wandb(exit_code=result["exit_code"])  # no-op without a W&B run
        if rank_zero_only.rank == 0:
            _write_result(run_dir / RESULT_FILE, result)
    return result["metrics"].get(names.KNN_ACC)


def _write_result(path: Path, result: dict) -> None:
    """Written whole and renamed into place: a kill mid-write leaves the old file or none, never
    a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=2, default=str) + "\n")
    partial.replace(path)


def finished_result(run_dir: Path, cfg: DictConfig) -> dict | None:
    """The job's recorded result if it finished (`ok`) with this config (up to
    MAY_DIFFER_WHEN_DONE), else None: the job has to run."""
    path = run_dir / RESULT_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):  # no result yet, or an unreadable one: run the job
        return None
    if recorded.get("status") != "ok":
        return None
    if not recorded.get("config"):
        log.warning("%s records no config to compare with: the job runs again", path)
        return None
    try:  # as result.json stores it: resolved, through JSON
        config = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True), default=str))
    except Exception:  # e.g. an interpolation that fails: the job will fail and say why
        return None
    differences = config_differences(recorded["config"], config, MAY_DIFFER_WHEN_DONE, path.name)
    if differences:
        log.warning(
            "%s finished with another config, so the job runs again:\n%s",
            path,
            "\n".join(differences),
        )
        return None
    return recorded

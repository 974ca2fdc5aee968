"""One training run from a composed config: what `python -m orbitcl.train` runs.

This file only composes: it builds every component from the Hydra config, checks them before any
data is read or anything is written, and hands them to Lightning.
"""

import logging
import os
import shutil
import sys
from functools import partial
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from orbitcl.callbacks import names
from orbitcl.callbacks.requirements import skipped, usable_callbacks
from orbitcl.checks.numbers import require_number
from orbitcl.data import DataNotFoundError
from orbitcl.tracking.last_metrics import LastMetrics
from orbitcl.tracking.loggers import finish_wandb, quiet_lightning_tips
from orbitcl.tracking.start import StartLogger
from orbitcl.training.config import ConfigError, build
from orbitcl.training.job import in_multirun, run_job
from orbitcl.training.labels import (
    check_labels,
    load_training_data,
    save_class_counts,
    serve_class_similarity,
)
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.nonfinite import NonFiniteLossError
from orbitcl.training.objectives import needs_of
from orbitcl.training.resume import (
    ConfigSnapshot,
    check_resumable,
)
from orbitcl.training.speed import apply_speed_switches, set_matmul_precision

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Fits the model described by `cfg`, writing everything under `run_dir`; returns the final
    value of every scalar metric logged (`val/knn_acc`: the final kNN accuracy)."""
    L.seed_everything(cfg.seed, workers=True)
    try:
        set_matmul_precision(cfg.model.get("float32_matmul_precision", "highest"))
    except ValueError as err:
        raise ConfigError(f"model.{err}") from err
    # Built first: constructors validate their arguments, so bad values fail in seconds.
    loss = build("loss", cfg.loss)
    aux = _auxiliary_terms(cfg.get("aux"))
    datamodule = build("dataset", cfg.dataset)
    encoder = build("model.encoder", cfg.model.encoder)
    projector = build("model.projector", cfg.model.projector, in_dim=encoder.out_dim)
    predictor = _predictor(cfg.model, loss, projector)
    terms = {"loss": loss} | {f"aux.{name}.loss": term for name, (_, term) in aux.items()}
    check_labels(datamodule, terms)  # before any data is read
    optimizer = build("optim.optimizer", cfg.optim.optimizer)
    scheduler = build("optim.scheduler", cfg.optim.scheduler) if cfg.optim.scheduler else None
    lr_scaling = cfg.optim.get("lr_scaling", "none")
    try:
        module = ContrastiveModule(
            encoder,
            projector,
            loss,
            optimizer,
            scheduler,
            on_nonfinite_loss=cfg.on_nonfinite_loss,
            aux=aux,
            lr_scaling=lr_scaling,
            predictor=predictor,
            **cfg.eval,
        )
    except ValueError as err:  # its arguments are top-level keys but for optim.lr_scaling
        message = str(err)
        named = f"optim.{message}" if message.startswith("lr_scaling=") else message
        raise ConfigError(named) from err
    apply_speed_switches(
        module.encoder,
        module.projector,
        channels_last=cfg.model.get("channels_last", False),
        compile=cfg.model.get("compile", False),
    )
    # Missing data fails here, before any log or checkpoint exists. Under torchrun or SLURM every
    # process runs this file: one per machine checks (and downloads), as Lightning would.
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        datamodule.prepare_data()
    # The splits, loaded now, so that a class-imbalanced subset the data cannot give, or a class
    # similarity it cannot make, also fails before anything is written.
    class_counts = load_training_data(datamodule)
    serve_class_similarity(datamodule, terms)

    config = OmegaConf.to_container(cfg, resolve=True)
    built = [(f"callbacks.{k}", c) for k, c in cfg.callbacks.items() if c is not None]
    # What the data cannot feed is left out now, one log line each, not failed on mid-run.
    callbacks = usable_callbacks([(key, build(key, c)) for key, c in built], datamodule)
    skipped(f"the kNN monitor ({names.KNN_ACC})", module.knn_needs, datamodule)  # it runs none
    callbacks.append(ConfigSnapshot(config))
    resume_from = _resumable_checkpoint(callbacks, config)
    quiet_lightning_tips()
    hyperparameters = config
    if class_counts is not None:
        save_class_counts(run_dir, datamodule, class_counts)
        hyperparameters = config | {"train_class_counts": class_counts}
    if cfg.logger:  # started by the trainer, after ConfigSnapshot's check of a resume's length
        callbacks.append(StartLogger(partial(build, "logger", cfg.logger), hyperparameters))
    last = LastMetrics()  # whichever logger was chosen, it keeps each metric's final value
    trainer = build("trainer", cfg.trainer, logger=[last], callbacks=callbacks)

    # weights_only: a checkpoint holds tensors and plain data, and loading it runs no code.
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    if module.last_validated_step != trainer.global_step:  # e.g. max_steps ended mid-epoch
        trainer.validate(module, datamodule=datamodule, verbose=False)
    split = f"{datamodule.__class__.__name__} test split"
    metrics = trainer.callback_metrics
    # The kNN line last: the line scripts (and the notebook) read as the run's result.
    if trainer.is_global_zero and names.LINEAR_ACC in metrics:
        print(f"online linear accuracy ({split}): {float(metrics[names.LINEAR_ACC]):.4f}")
    if trainer.is_global_zero and names.KNN_ACC in metrics:
        print(f"kNN accuracy ({cfg.eval.knn_k}-NN, {split}): {float(metrics[names.KNN_ACC]):.4f}")
    return last.final(trainer)


def _predictor(model: DictConfig, loss, projector):
    """The predictor head from `model.predictor` (its in_dim: the projector's out_dim) if the
    loss needs one (SimSiam, BYOL: their configs bring it), else None."""
    node = model.get("predictor")
    if not needs_of(loss).predictor:
        if node is not None:
            log.info("model.predictor is not used: loss=%s needs none", type(loss).__name__)
        return None
    if node is None:
        raise ConfigError(
            f"model.predictor is missing: loss={type(loss).__name__} needs a predictor head "
            "(add model/predictor=simsiam or model/predictor=byol)"
        )
    if not isinstance(getattr(projector, "out_dim", None), int):
        raise ConfigError(
            f"model.projector ({type(projector).__name__}) is invalid with model.predictor: the "
            "predictor's in_dim is the projector's out_dim, and it has no integer out_dim"
        )
    return build("model.predictor", node, in_dim=projector.out_dim)


def _auxiliary_terms(node: DictConfig | None) -> dict:
    """`{name: (weight, loss)}` from `aux`: one term (`+aux=vrn` gives `{name, weight, loss}`)
    or a mapping of such terms by name."""
    if not node:
        return {}
    if "loss" in node:
        node = {node.get("name", "aux"): node}
    terms = {}
    for name, term in node.items():
        if "weight" not in term or "loss" not in term:
            raise ConfigError(f"aux.{name} is invalid: an auxiliary term needs `weight` and `loss`")
        field = "aux" if "name" in term else f"aux.{name}"
        # Checked here, and only here, where the field the user typed is known (`aux.weight`
        # for `+aux=vrn`): the module takes the weights as given.
        try:
            require_number(f"{field}.weight", term.weight, 0)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        weight = term.weight
        terms[name] = (weight, build(f"{field}.loss", term.loss))
    return terms


def _resumable_checkpoint(callbacks: list, config: dict) -> Path | None:
    """The run directory's `last.ckpt`, if there is one and it was written with this config."""
    checkpointing = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    if not checkpointing or checkpointing[0].dirpath is None:
        return None
    last = Path(checkpointing[0].dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
    if not last.is_file():
        return None
    check_resumable(last, config)  # truncated, another experiment's, not a checkpoint: stops
    log.info("Resuming from %s", last)
    return last


def _discard_if_empty(run_dir: Path) -> None:
    """Removes a run directory that holds nothing but Hydra's own bookkeeping."""
    if run_dir.is_dir() and all(p.name in {".hydra", "train.log"} for p in run_dir.iterdir()):
        shutil.rmtree(run_dir)


def run(cfg: DictConfig) -> float | None:
    """Trains in Hydra's run directory; returns the final kNN accuracy. A single run exits with
    status 2 on a bad config or missing data, 3 on a non-finite loss; a sweep's job records its
    outcome in result.json instead (`orbitcl.training.job.run_job`)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if in_multirun():  # the outcome goes to run_dir/result.json; a failed job ends only itself
        return run_job(train, cfg, run_dir)
    try:
        return train(cfg, run_dir).get(names.KNN_ACC)
    except (ConfigError, DataNotFoundError) as err:
        _discard_if_empty(run_dir)
        print(f"orbitcl: error: {err}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteLossError as err:
        print(f"orbitcl: error: {err}", file=sys.stderr)
        sys.exit(3)
    finally:
        # Closed even after a crash, and then marked failed in W&B.
        finish_wandb(exit_code=0 if sys.exc_info()[0] is None else 1)

"""Train a contrastive model: `python -m orbitcl.train loss=orl dataset=mnist`.

This file only composes: it builds every component from the Hydra config, checks them before any
data is read or anything is written, and hands them to Lightning.
"""

import logging
import shutil
import sys
from pathlib import Path

import hydra
import lightning as L
import wandb
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from orbitcl.config import ConfigError, build
from orbitcl.data import DataNotFoundError
from orbitcl.module import ContrastiveModule

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path) -> float:
    """Fits the model described by `cfg`, writing everything under `run_dir`; returns the final
    kNN accuracy."""
    L.seed_everything(cfg.seed, workers=True)
    # Built first: constructors validate their arguments, so bad values fail in seconds.
    loss = build("loss", cfg.loss)
    datamodule = build("dataset", cfg.dataset)
    encoder = build("model.encoder", cfg.model.encoder)
    projector = build("model.projector", cfg.model.projector, in_dim=encoder.out_dim)
    module = ContrastiveModule(
        encoder,
        projector,
        loss,
        optimizer=build("optim.optimizer", cfg.optim.optimizer),
        scheduler=build("optim.scheduler", cfg.optim.scheduler) if cfg.optim.scheduler else None,
        **cfg.eval,
    )
    datamodule.prepare_data()  # missing data fails here, before any log or checkpoint exists

    logger = build("logger", cfg.logger) if cfg.logger else False
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    callbacks = [build(f"callbacks.{k}", c) for k, c in cfg.callbacks.items() if c is not None]
    trainer = build("trainer", cfg.trainer, logger=logger, callbacks=callbacks)

    trainer.fit(module, datamodule=datamodule)
    if module.last_knn_step != trainer.global_step:  # e.g. max_steps ended mid-epoch
        trainer.validate(module, datamodule=datamodule, verbose=False)
    accuracy = float(trainer.callback_metrics["val/knn_acc"])
    print(
        f"kNN accuracy ({cfg.eval.knn_k}-NN, {datamodule.__class__.__name__} test split): "
        f"{accuracy:.4f}"
    )
    return accuracy


def _discard_if_empty(run_dir: Path) -> None:
    """Removes a run directory that holds nothing but Hydra's own bookkeeping."""
    if run_dir.is_dir() and all(p.name in {".hydra", "train.log"} for p in run_dir.iterdir()):
        shutil.rmtree(run_dir)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return train(cfg, run_dir)
    except (ConfigError, DataNotFoundError) as err:
        _discard_if_empty(run_dir)
        print(f"orbitcl: error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        wandb.finish()  # a crashed run is still closed, so the next job can start its own


if __name__ == "__main__":
    main()

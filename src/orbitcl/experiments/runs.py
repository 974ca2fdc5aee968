"""A finished training run, loaded back: its config, its trained encoder and projector, and its
datamodule. Shared by `orbitcl.evaluate`, `orbitcl.analyze` and the notebook.

A run directory holds `.hydra/config.yaml` (the composed config, as Hydra saved it) and
`checkpoints/*.ckpt` (Lightning checkpoints whose `state_dict` keys are `encoder.*`,
`projector.*` and `loss.*`). The model is rebuilt from the config's `_target_`s, exactly as
`orbitcl.train` built it, and the weights are loaded into it.

A run directory may come from elsewhere: before anything is built, every target of the nodes
built here must be on the allow-list of `experiments.trust` (plus what the caller allows), and
the checkpoint is read with `weights_only=True`, so loading a run runs none of its code.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from orbitcl.data import MultiViewDataModule
from orbitcl.experiments.trust import check_targets
from orbitcl.training.config import build


@dataclass
class TrainedRun:
    name: str  # e.g. "orl-tau0.5": the loss chosen at training time and its temperature
    run_dir: Path
    checkpoint: Path
    cfg: DictConfig  # the run's composed config (unresolved: ${hydra:...} keys are unusable)
    encoder: nn.Module  # eval mode, on the requested device
    projector: nn.Module
    datamodule: MultiViewDataModule  # not set up: call setup() to load the splits
    global_step: int


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file as given, or a run directory's `checkpoints/last.ckpt`."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: pass a .ckpt file or a run directory with "
            "checkpoints/last.ckpt"
        )
    return path


def run_name(run_dir: Path, cfg: DictConfig) -> str:
    """`<loss>-tau<temperature>` from the Hydra choices saved with the run, else the folder."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        return run_dir.name
    loss = OmegaConf.load(hydra_file).hydra.runtime.choices.get("loss", "run")
    temperature = OmegaConf.select(cfg, "loss.temperature")
    return loss if temperature is None else f"{loss}-tau{temperature}"


# The config nodes load_run builds, each checked against the allow-list first.
BUILT = ("model.encoder", "model.projector", "dataset")


def _no_download(node: DictConfig) -> dict:
    """Overrides that keep a timm or torchvision encoder from fetching pretrained weights: the
    checkpoint's weights replace them, and loading a run must work offline."""
    return {key: off for key, off in (("pretrained", False), ("weights", None)) if key in node}


def load_run(
    path: str | Path, device: str | torch.device = "cpu", allow: Iterable[str] = ()
) -> TrainedRun:
    """Loads the run a checkpoint (or a run directory, for its last.ckpt) belongs to.

    `allow`: target prefixes to build beyond the allow-list (`experiments.trust`); raises
    `UntrustedTargetError` (a ValueError) before building anything outside it.
    """
    checkpoint = checkpoint_path(path)
    run_dir = checkpoint.parent.parent  # <run_dir>/checkpoints/<file>.ckpt
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"no {config_file}: {checkpoint} must lie in <run dir>/checkpoints/ of a run of "
            "orbitcl.train"
        )
    cfg = OmegaConf.load(config_file)
    for field in BUILT:
        check_targets(OmegaConf.select(cfg, field), field, str(config_file), allow)
    encoder = build("model.encoder", cfg.model.encoder, **_no_download(cfg.model.encoder))
    projector = build("model.projector", cfg.model.projector, in_dim=encoder.out_dim)
    datamodule = build("dataset", cfg.dataset)

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for prefix, module in (("encoder.", encoder), ("projector.", projector)):
        weights = {
            k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)
        }
        module.load_state_dict(weights)  # strict: a mismatch with the config is an error
        module.to(device).eval()
    return TrainedRun(
        name=run_name(run_dir, cfg),
        run_dir=run_dir,
        checkpoint=checkpoint,
        cfg=cfg,
        encoder=encoder,
        projector=projector,
        datamodule=datamodule,
        global_step=int(state.get("global_step", -1)),
    )

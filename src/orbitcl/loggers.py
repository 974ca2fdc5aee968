"""Weights & Biases logging that never prompts and never hangs: offline when it must be."""

import logging
import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_mode() -> tuple[str, str]:
    """Returns (mode, reason): `WANDB_MODE` if set, else "offline" without a login or without a
    route to the W&B server (checked with a 3 s connection attempt), else "online"."""
    if mode := os.environ.get("WANDB_MODE"):
        return mode, "WANDB_MODE is set"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(host)):
        return "offline", "no W&B login found (run `wandb login` to log online)"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return "offline", f"{host} is not reachable"
    return "online", "logged in and online"


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(save_dir: str, project: str, name: str, **kwargs) -> WandbLogger:
    """A WandbLogger whose files live under `save_dir` (the run directory), offline if needed."""
    mode, reason = wandb_mode()
    if mode == "offline":
        log.warning(
            "W&B runs offline (%s). Its files go to %s; upload them later with: wandb sync %s",
            reason,
            Path(save_dir) / "wandb",
            Path(save_dir) / "wandb" / "offline-run-*",
        )
    return WandbLogger(save_dir=save_dir, project=project, name=name, mode=mode, **kwargs)

"""Weights & Biases logging that never prompts, never hangs and never stops training: it goes
offline when it must, and the run can be uploaded later with `wandb sync`. A run directory keeps
its W&B run id, so that a resumed run logs into the same W&B run. Also: Lightning's promotional
tips are kept out of the logs."""

import logging
import netrc
import os
import re
import secrets
import socket
import string
import sys
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id"  # in the run directory
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what W&B accepts; new ones: 8 of [a-z0-9], as W&B's


def wandb_mode() -> tuple[str, str]:
    """Returns (mode, reason). `WANDB_MODE=offline|disabled` is obeyed; otherwise "online" needs
    a login and a route to the W&B server (a 3 s connection attempt), else "offline"."""
    requested = os.environ.get("WANDB_MODE", "online")
    if requested in ("offline", "disabled", "dryrun"):
        return requested, f"WANDB_MODE={requested}"
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = url.hostname or "api.wandb.ai"
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(host)):
        return "offline", "no W&B login found; run `wandb login` to log online"
    try:
        socket.create_connection((host, url.port or 443), timeout=3).close()
    except OSError as err:
        return "offline", f"{host} is not reachable ({err.__class__.__name__})"
    return "online", "logged in and online"


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(save_dir: str, project: str, name: str, **kwargs) -> WandbLogger:
    """A WandbLogger with its files under `save_dir` (the run directory).

    The W&B run is started here, not at the first metric, so that a failing start (server error,
    bad key) falls back to offline before training rather than stopping it. Its id is the run
    directory's (`run_id`) with `resume="allow"`: a killed run that resumes from its last.ckpt
    continues the same W&B run, online or offline, and its curves stay one line.
    """
    import wandb  # here, not at the top: runs that do not log to W&B never import it

    kwargs = {"id": run_id(Path(save_dir)), "resume": "allow", **kwargs}
    mode, reason = wandb_mode()
    if mode == "online":
        try:
            logger = _start(save_dir, project, name, "online", **kwargs)
            log.info("W&B run online: %s", logger.experiment.url)
            return logger
        except Exception as err:  # any failure of the service must not stop training
            # The failed run keeps its id registered in this process's W&B service: a fresh
            # service lets the offline run take the same id.
            wandb.finish()
            wandb.teardown()
            reason = f"the W&B run could not start online ({err.__class__.__name__}: {err})"
            mode = "offline"
    if mode == "offline":
        offline_dir = Path(save_dir) / "wandb"
        log.warning(
            "W&B runs offline: %s. Its files go to %s; upload them later with: wandb sync %s",
            reason,
            offline_dir,
            offline_dir / "offline-run-*",
        )
    try:
        return _start(save_dir, project, name, mode, **kwargs)
    except Exception as err:  # e.g. the id still held by the W&B service of a killed process
        new = new_run_id()
        log.warning(
            "W&B could not continue run %s (%s: %s): logging to a new W&B run, %s",
            kwargs["id"],
            err.__class__.__name__,
            err,
            new,
        )
        wandb.teardown()
        return _start(save_dir, project, name, mode, **{**kwargs, "id": new})


def run_id(run_dir: Path) -> str:
    """The W&B run id of `run_dir`: the one in its `RUN_ID_FILE`, else a new one written there.

    Only global rank zero writes (the only rank that logs); the file is replaced atomically, so
    a kill never leaves half an id.
    """
    path = run_dir / RUN_ID_FILE
    if path.is_file():
        stored = path.read_text().strip()
        if RUN_ID.fullmatch(stored):
            return stored
        log.warning("%s holds no W&B run id (%r): starting a new W&B run", path, stored[:80])
    new = new_run_id()
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(new + "\n")
        os.replace(partial, path)
    return new


def new_run_id() -> str:
    """8 random characters of [a-z0-9], like W&B's own run ids."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def quiet_lightning_tips() -> None:
    """Keeps Lightning's promotional tips ("💡 Tip: ... try installing ...") out of the logs."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_tips)


def _drop_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


def _start(save_dir: str, project: str, name: str, mode: str, **kwargs) -> WandbLogger:
    import wandb

    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        mode=mode,
        settings=wandb.Settings(init_timeout=60, silent=mode != "online"),
        **kwargs,
    )
    logger.experiment  # noqa: B018 -- starts the run now (a no-op on ranks other than zero)
    return logger


def finish_wandb(exit_code: int = 0) -> None:
    """Closes this process's W&B run, if there is one. W&B is imported only by runs that log to
    it (``wandb_logger``): where it was never imported there is no run to close, and a machine
    without W&B (the GPU check's) trains with any other logger."""
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.finish(exit_code=exit_code)

"""Every loss config trains through the real command line: a smoke run of each (3 steps on the
default digits, `+debug=smoke`), all of them in one Hydra multirun (one process). The configs
are found by globbing conf/loss/*.yaml, and what a loss needs is read from its class."""

import csv
import math

import torch
import yaml
from helpers.paths import CONF_DIR
from helpers.train_cli import run_module
from hydra.utils import get_class

# Every loss config (conf/loss/NAME.yaml): adding one adds it here.
CONFIGS = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))


def needs(train_config, name: str):
    """The `Needs` of the loss class that conf/loss/NAME.yaml builds."""
    return get_class(train_config(f"loss={name}").loss._target_).needs


def test_the_configs_are_found(train_config):
    assert len(CONFIGS) >= 17 and "ntxent" in CONFIGS
    # Continuous labels are not the default digits' (class labels): those losses train on
    # rotated MNIST (tests/training/test_imbalance_run.py), every other one here.
    continuous = [name for name in CONFIGS if needs(train_config, name).continuous_labels]
    assert continuous and "ntxent" not in continuous


def test_every_loss_trains_through_the_command_line(tmp_path, train_config):
    on_digits = [name for name in CONFIGS if not needs(train_config, name).continuous_labels]
    sweep_dir = tmp_path / "sweep"
    losses = f"loss={','.join(on_digits)}"
    result = run_module("-m", losses, "+debug=smoke", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = {}
    for config_file in sweep_dir.glob("*/.hydra/config.yaml"):
        run_dir = config_file.parents[1]
        name = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"][
            "choices"
        ]["loss"]
        checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        with open(run_dir / "metrics.csv") as f:
            losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row["train/loss"]]
        trained[name] = (checkpoint["global_step"], losses)
    assert sorted(trained) == on_digits
    for name, (step, losses) in trained.items():
        assert step == 3, name
        assert losses and all(math.isfinite(x) for x in losses), name

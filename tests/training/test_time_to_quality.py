"""The fast MNIST ORL recipe (`+experiment=orl_mnist_fast`): what it sets, that it trains through
the command line, and (slow) that it reaches kNN accuracy 0.97 after its first epoch, timed by
`benchmarks/time_to_knn.py`."""

import csv
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers.paths import ROOT
from helpers.train_cli import SMOKE, run_module


def test_fast_preset_sets_its_recipe_and_yields_to_the_command_line(train_config):
    cfg = train_config("+experiment=orl_mnist_fast")
    assert cfg.dataset._target_.endswith("MNISTDataModule") and cfg.dataset.pipeline == "batched"
    assert cfg.loss._target_ == "orbitcl.losses.ORLLoss" and cfg.loss.temperature == 0.5
    assert (cfg.dataset.batch_size, cfg.optim.optimizer.lr, cfg.trainer.max_epochs) == (64, 3e-3, 2)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.model.channels_last is True
    cfg = train_config("+experiment=orl_mnist_fast", "trainer.precision=32-true", "loss=ntxent")
    assert cfg.trainer.precision == "32-true" and cfg.loss._target_.endswith("NTXentLoss")


def test_fast_preset_trains_through_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    result = run_module("+experiment=orl_mnist_fast", *SMOKE, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert any(r.get("val/knn_acc") for r in rows)
    # model.channels_last reached the encoder: its second convolution's weight is NHWC.
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    conv = weights["encoder.features.3.weight"]  # (64, 32, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


@pytest.mark.slow  # ~70 s on a 2-core CPU: a full MNIST epoch and a kNN over 60k + 10k images
def test_fast_preset_reaches_knn_97_after_one_epoch():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_knn.py"), "seed=0"],
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = float(re.search(r"epoch 0: ([0-9.]+)", result.stdout).group(1))
    assert first >= 0.97, result.stdout
    assert re.search(r"time to kNN 0.97: \d+ s \(epoch 0\)", result.stdout), result.stdout

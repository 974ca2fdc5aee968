"""End-to-end runs of the real command line, `python -m orbitcl.train`, in subprocesses (and its
config checks in this process)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.train_cli import run_module

from orbitcl.training.config import ConfigError
from orbitcl.training.fit import train


def test_default_job_trains_and_prints_knn_accuracy(tmp_path):
    run_dir = tmp_path / "run"
    result = run_module(
        "trainer.max_epochs=2", "logger=csv", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("kNN accuracy"))
    accuracy = float(line.rsplit(" ", 1)[1])
    assert 0.5 < accuracy <= 1.0  # 10 classes: chance is 0.1
    metrics = (run_dir / "metrics.csv").read_text()
    assert "train/loss" in metrics and "val/knn_acc" in metrics
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_orl_on_mnist_writes_checkpoint_and_offline_wandb_run(tmp_path):
    """The issue's acceptance run, from a foreign working directory, with W&B deciding by
    itself to go offline (no login: an empty HOME and no API key)."""
    run_dir = tmp_path / "mnist-orl"
    result = run_module(
        "loss=orl",
        "dataset=mnist",
        "trainer.max_steps=20",
        "dataset.num_workers=0",
        "callbacks.umap=null",  # drawn and tested in tests/callbacks/test_diagnostics.py
        # Every diagnostic runs, on fewer images: the kNN and similarity statistics of the
        # defaults, on all of MNIST, take minutes (tested on digits in tests/callbacks/).
        "trainer.limit_val_batches=2",
        "callbacks.similarity.n_images=512",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env_extra={"WANDB_MODE": None, "WANDB_API_KEY": None, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "W&B runs offline" in result.stderr + result.stdout
    assert "wandb sync" in result.stderr + result.stdout
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and any(offline_runs[0].glob("*.wandb"))
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 20
    assert any(k.startswith("encoder.") for k in checkpoint["state_dict"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss.temperature=0", "loss.temperature=0"),
        ("on_nonfinite_loss=ignore", "on_nonfinite_loss='ignore'"),
    ],
)
def test_bad_values_fail_fast_naming_the_field(tmp_path, override, message):
    run_dir = tmp_path / "run"
    result = run_module(*override.split(), f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()  # nothing half-written is left behind


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss.temperature=-0.5", "loss.temperature=-0.5"),
        ("dataset.n_views=1", "dataset.n_views=1"),
        ("model.projector.out_dim=0", "model.projector.out_dim=0"),
        ("loss=orl loss.t_min=0", "loss.t_min=0"),
        ("loss=orl loss.t_min=1.5", "loss.t_min=1.5"),
        ("dataset.batch_size=1", "dataset.batch_size=1"),
        ("model.float32_matmul_precision=tf32", "model.float32_matmul_precision='tf32'"),
    ],
)
def test_bad_values_stop_before_anything_is_built(train_config, tmp_path, override, message):
    """The same check as the command line's (above), in this process: `train` raises the
    ConfigError that the command line prints with exit status 2 (orbitcl.training.fit.run)."""
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=re.escape(message) + ".* is invalid"):
        train(train_config(*override.split()), run_dir)
    assert not run_dir.exists()


def test_missing_data_offline_names_the_directory(tmp_path):
    empty = tmp_path / "nodata"
    run_dir = tmp_path / "run"
    result = run_module(
        "dataset=mnist",
        f"dataset.data_dir={empty}",
        "dataset.download=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert str(empty) in result.stderr and "Traceback" not in result.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss=hinge", "Available options in 'loss'"),
        ("dataset=imagenet", "Available options in 'dataset'"),
        ("loss.temprature=0.1", "Key 'temprature' is not in struct"),
    ],
)
def test_unknown_names_and_keys_fail_before_anything_is_written(tmp_path, override, message):
    run_dir = tmp_path / "run"
    result = run_module(override, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    if "Available" in message:  # the choices are listed
        assert "ntxent" in result.stderr or "mnist" in result.stderr
    assert not run_dir.exists()


def test_entry_point_composes_before_importing_torch_lightning_or_wandb():
    # A mistyped option fails as soon as Hydra composes (~0.5 s), not after ~8 s of imports.
    # And W&B is imported only by a run that logs to it: the training, sweep and evaluation
    # modules run without it (the GPU machines have none).
    heavy = ["torch", "lightning", "wandb", "torchvision"]
    code = (
        f"import sys, orbitcl.train; print([m for m in {heavy!r} if m in sys.modules])\n"
        "import orbitcl.training.fit, orbitcl.training.job, orbitcl.experiments.sweep\n"
        "import orbitcl.analyze, orbitcl.evaluate, orbitcl.compare, orbitcl.callbacks.outputs\n"
        "print('torch' in sys.modules, 'wandb' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True False"]


def test_truncated_data_file_is_named(tmp_path):
    data = tmp_path / "data" / "MNIST" / "raw"
    data.mkdir(parents=True)
    source = Path(os.environ["ORBITCL_DATA_DIR"]) / "MNIST" / "raw"
    for f in source.iterdir():
        if not f.name.endswith(".gz"):
            (data / f.name).write_bytes(f.read_bytes())
    truncated = data / "t10k-labels-idx1-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:100])
    result = run_module(
        "dataset=mnist",
        f"dataset.data_dir={tmp_path / 'data'}",
        "dataset.download=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "t10k-labels-idx1-ubyte" in result.stderr and "Traceback" not in result.stderr

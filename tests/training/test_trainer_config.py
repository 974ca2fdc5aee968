"""The trainer group takes every Lightning Trainer argument as `trainer.NAME=VALUE`, and a
mistyped one fails before training, suggesting the closest argument."""

import inspect
import time

import lightning as L
import torch
from helpers.train_cli import run_module

from orbitcl.train import trainer_arguments

BUILT_BY_ORBITCL = {"logger", "callbacks"}  # from their own config groups


def test_the_trainer_group_lists_every_trainer_argument():
    parameters = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    assert trainer_arguments() == parameters - BUILT_BY_ORBITCL


def test_trainer_config_composes_with_lightnings_defaults(train_config):
    cfg = train_config("trainer.limit_train_batches=2", "trainer.gradient_clip_algorithm=norm")
    assert cfg.trainer.limit_train_batches == 2
    assert cfg.trainer.gradient_clip_algorithm == "norm"
    defaults = inspect.signature(L.Trainer.__init__).parameters
    assert cfg.trainer.overfit_batches == defaults["overfit_batches"].default  # Lightning's own


def test_limit_batches_train_without_plus(tmp_path):
    run_dir = tmp_path / "run"
    result = run_module(
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.max_epochs=1",
        "+debug=smoke",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2  # two batches of one epoch


def test_a_mistyped_trainer_argument_fails_first_and_suggests_the_closest(tmp_path):
    run_dir = tmp_path / "run"
    start = time.monotonic()
    result = run_module("trainer.limit_train_batchez=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert time.monotonic() - start < 10  # before torch and Lightning are imported
    assert result.returncode == 2
    assert "trainer.limit_train_batchez is not a Lightning Trainer argument" in result.stderr
    assert "did you mean trainer.limit_train_batches?" in result.stderr
    assert not run_dir.exists()


def test_the_gpu_preset_composes_one_gpu_in_bf16_nhwc_and_tf32(train_config):
    cfg = train_config("trainer=gpu")
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("gpu", 1)
    assert cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.strategy == "auto"  # one process, not DDP
    assert cfg.model.channels_last is True  # a model key, set by the preset
    assert cfg.model.float32_matmul_precision == "high"  # TF32 for the encoder
    assert train_config().model.float32_matmul_precision == "highest"  # not without the preset
    # Each stays overridable, and the trainer keeps every other default.
    cfg = train_config("trainer=gpu", "model.channels_last=false", "trainer.precision=32-true")
    assert cfg.model.channels_last is False and cfg.trainer.precision == "32-true"
    assert cfg.trainer.max_epochs == train_config().trainer.max_epochs
    # Built, it is a Trainer argument list Lightning accepts (checked without a GPU).
    assert set(cfg.trainer) - {"_target_"} <= trainer_arguments()


def test_the_ddp_preset_composes_one_nccl_process_per_gpu(train_config):
    from hydra.utils import instantiate

    cfg = train_config("trainer=ddp", "trainer.devices=2")
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.num_nodes) == ("gpu", 2, 1)
    assert train_config("trainer=ddp").trainer.devices == -1  # every GPU of the node
    strategy = instantiate(cfg.trainer.strategy)  # built without a GPU
    assert type(strategy).__name__ == "DDPStrategy"
    assert strategy.process_group_backend == "nccl"
    assert cfg.trainer.sync_batchnorm is True and cfg.trainer.precision == "32-true"
    assert set(cfg.trainer) - {"_target_"} <= trainer_arguments()

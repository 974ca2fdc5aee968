"""Auxiliary loss terms through the real command line (`+aux=vrn`), and VRN's default target."""

import csv
import functools
import math

import lightning as L
import pytest
import torch
from helpers.train_cli import SMOKE, run_module

from orbitcl.data import DigitsDataModule
from orbitcl.losses import NTXentLoss, VRNLoss
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.module import ContrastiveModule


def test_orl_with_vrn_logs_the_weighted_objective(tmp_path):
    run_dir = tmp_path / "run"
    result = run_module(
        "loss=orl", "+aux=vrn", "aux.weight=30", *SMOKE, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/aux/vrn")]
    assert len(rows) == 3  # one per step (log_every_n_steps=1)
    for row in rows:
        total, main, aux = (
            float(row[k]) for k in ("train/loss", "train/main_loss", "train/aux/vrn")
        )
        assert all(math.isfinite(x) for x in (total, main, aux))
        assert aux > 0  # random embeddings are far from the target cosine -1/59999
        # float32 arithmetic, logged as float32: equal to its rounding
        assert total == pytest.approx(main + 30 * aux, rel=1e-6)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("aux.weight=-1", "aux.weight=-1 is invalid"),
        ("aux.weight=abc", "aux.weight='abc' is invalid"),
        ("aux.loss.target=2", "aux.loss.target=2 is invalid"),
    ],
)
def test_bad_aux_values_fail_fast_naming_the_field(tmp_path, override, message):
    run_dir = tmp_path / "run"
    result = run_module("loss=orl", "+aux=vrn", override, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("orbitcl: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()  # nothing written


def test_module_gives_vrn_the_training_set_size(tmp_path):
    """VRN's default target -1/(k-1) needs k, the number of training images: the module sets it
    when training starts, and the logged term is VRN at that target."""
    L.seed_everything(0)
    encoder = ConvEncoder(widths=[8, 16])
    vrn = VRNLoss()
    logged = {}

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            z_a, z_b = outputs["projections"]
            logged["expected"] = VRNLoss(target=-1 / (k - 1))(z_a, z_b)
            logged["logged"] = trainer.callback_metrics["train/aux/vrn"]

    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, hidden_dim=32, out_dim=16),
        NTXentLoss(0.5),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        knn_k=20,
        aux={"vrn": (1.0, vrn)},
    )
    datamodule = DigitsDataModule(batch_size=64, num_workers=0)
    datamodule.setup()
    k = len(datamodule.train_dataloader().dataset)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        log_every_n_steps=1,  # the module logs its scalars at Lightning's log steps only
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[Record()],
    )
    trainer.fit(module, datamodule=datamodule)
    assert k > 1000 and vrn.train_set_size == k
    torch.testing.assert_close(logged["logged"], logged["expected"])

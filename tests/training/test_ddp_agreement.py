"""DDP that cannot crash or hang, on the CPU with 2 gloo processes: the kNN and linear accuracy
exact under `limit_val_batches`, and a non-finite loss on one rank only decided alike on every
rank (`stop` ends them all with one diagnosis, `skip` keeps them at the same step count)."""

import functools
import os
import time

import lightning as L
import torch
import torch.distributed as dist
from helpers.gloo_ranks import WORLD, spawn
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from orbitcl.callbacks import OnlineLinearClassifier
from orbitcl.data import DigitsDataModule
from orbitcl.losses import NTXentLoss
from orbitcl.metrics.knn import knn_accuracy, whole_loader_split
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.nonfinite import NonFiniteLossError

BAD_STEP, STEPS, VAL_BATCHES, EVAL_BATCH = 1, 4, 2, 50


class NaNOnRankOne(nn.Module):
    """NT-Xent, except that rank 1's loss of one step is NaN: the ranks disagree."""

    def __init__(self):
        super().__init__()
        self.ntxent, self.calls = NTXentLoss(0.5), 0
        self.gather_distributed = False

    def forward(self, z_a, z_b):
        self.ntxent.gather_distributed = self.gather_distributed
        self.calls += 1
        loss = self.ntxent(z_a, z_b)
        bad = self.calls == BAD_STEP + 1 and dist.get_rank() == 1
        return loss * float("nan") if bad else loss


def _fit(rank: int, tmp: str, policy: str) -> dict:
    os.environ.update(WORLD_SIZE=str(WORLD), NODE_RANK="0", RANK=str(rank), LOCAL_RANK=str(rank))
    L.seed_everything(0)
    encoder = ConvEncoder(widths=[8, 16])
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, hidden_dim=32, out_dim=16),
        NaNOnRankOne(),
        optimizer=functools.partial(torch.optim.SGD, lr=0.05),
        knn_k=20,
        on_nonfinite_loss=policy,
    )
    datamodule = DigitsDataModule(batch_size=32, num_workers=0, eval_batch_size=EVAL_BATCH)
    linear = OnlineLinearClassifier()
    ran = {0: [], 1: []}  # the dataset indices of the validation batches that ran, per loader

    class RecordValidation(L.Callback):
        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, loader_idx=0):
            sampler = list(trainer.val_dataloaders[loader_idx].sampler)
            ran[loader_idx] += sampler[batch_idx * EVAL_BATCH : (batch_idx + 1) * EVAL_BATCH]

    trainer = L.Trainer(
        accelerator="cpu",
        devices=WORLD,
        strategy=DDPStrategy(process_group_backend="gloo"),
        max_steps=STEPS,
        limit_val_batches=VAL_BATCHES,
        val_check_interval=STEPS,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp,
        callbacks=[RecordValidation(), linear],
    )
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
    except NonFiniteLossError as err:
        return {"stopped": str(err), "seconds": time.perf_counter() - started}
    # One process on the same limited batches: every sample that ran on some rank, once.
    module.eval()
    with torch.no_grad():
        splits = []
        for loader_idx, loader in enumerate(datamodule.val_dataloader()):
            indices = sorted(set(_all(ran[loader_idx])))
            images, labels = zip(*(loader.dataset[i] for i in indices), strict=True)
            splits.append((module(torch.stack(images)), torch.as_tensor(labels)))
    (bank, bank_labels), (queries, query_labels) = splits
    predicted = linear.classifier(queries).argmax(1)
    return {
        "seconds": time.perf_counter() - started,
        "global_step": trainer.global_step,
        "skipped": module.skipped_batches,
        "calls": module.loss.calls,
        "finite": all(torch.isfinite(p).all() for p in module.parameters()),
        "knn_acc": float(trainer.callback_metrics["val/knn_acc"]),
        "knn_acc_one_process": knn_accuracy(queries, query_labels, bank, bank_labels, k=20),
        "linear_acc": float(trainer.callback_metrics["val/linear_acc"]),
        "linear_acc_one_process": float((predicted == query_labels).float().mean()),
        "ran": len(set(_all(ran[1]))),
        "weights": nn.utils.parameters_to_vector(module.parameters()).detach(),
    }


def _all(indices: list[int]) -> list[int]:
    """Every rank's list, concatenated."""
    parts = [None] * WORLD
    dist.all_gather_object(parts, indices)
    return [i for part in parts for i in part]


def test_skip_on_one_rank_skips_on_every_rank_and_the_limited_knn_is_exact(tmp_path):
    per_rank = spawn(_fit, tmp_path, str(tmp_path), "skip")
    for out in per_rank:
        print({k: v for k, v in out.items() if k != "weights"})
        assert out["seconds"] < 60
        assert out["global_step"] == out["calls"] == STEPS  # no rank stopped or hung
        assert out["skipped"] == 1 and out["finite"]
    assert torch.equal(per_rank[0]["weights"], per_rank[1]["weights"])  # still in step
    # limit_val_batches=2 of 50 images per rank: 200 of the test split's samples ran, and the
    # gathered kNN and linear accuracy are one process's on exactly those.
    assert per_rank[0]["ran"] == WORLD * VAL_BATCHES * EVAL_BATCH
    for out in per_rank:
        assert out["knn_acc"] == out["knn_acc_one_process"]
        assert out["linear_acc"] == out["linear_acc_one_process"]


def test_stop_on_one_rank_stops_every_rank_with_one_diagnosis(tmp_path):
    per_rank = spawn(_fit, tmp_path, str(tmp_path), "stop")
    zero, one = per_rank
    print(zero, one)
    assert all("stopped" in out and out["seconds"] < 60 for out in per_rank)
    # The diagnosis from rank 1, which saw the NaN; rank 0 points to it.
    assert one["stopped"].startswith(f"Non-finite loss at step {BAD_STEP} (epoch 0, batch 1)")
    assert "NaNOnRankOne on views (0, 1) = nan" in one["stopped"]
    assert "non-finite" in one["stopped"] and "norms in [" in one["stopped"]
    assert zero["stopped"] == "Non-finite loss: stopped on every rank (diagnosis on rank 1)"


def _shares(rank: int) -> list:
    return [_share(rank, limit) for limit in (1, 6)]


def _share(rank: int, limit: int) -> tuple:
    """whole_loader_split of the first `limit` batches of this rank's shard of 23 samples, the
    ranks running different numbers of batches (what a per-rank limit could give)."""
    values = torch.arange(23.0) * 10  # sample i's "feature"
    dataset = TensorDataset(values, torch.arange(23) % 3)
    sampler = DistributedSampler(dataset, WORLD, rank, shuffle=False)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    batches = [b for _, b in zip(range(limit + rank), loader, strict=False)]
    features, labels = (torch.cat(x) for x in zip(*batches, strict=True))
    return whole_loader_split(features, labels, loader)


def test_whole_loader_split_keeps_what_ran_once_in_dataset_order(tmp_path):
    # Rank 0 runs 1 batch (samples 0 2 4 6), rank 1 runs 2 (1 3 5 ... 15).
    per_rank = spawn(_shares, tmp_path)
    expected = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 15]
    for (features, labels), whole in per_rank:
        assert features.tolist() == [10.0 * i for i in expected]
        assert labels.tolist() == [i % 3 for i in expected]
        # The whole shards (rank 1's padded by the sampler with sample 0): each sample once.
        assert whole[0].tolist() == [10.0 * i for i in range(23)]

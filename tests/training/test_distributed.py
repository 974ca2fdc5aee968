"""DDP on the CPU: 2 gloo processes, spawned by torch.multiprocessing or by the command line.

The losses with `gather_distributed` must be exact: the mean of the ranks' losses is the
one-process loss on the concatenated batch, and each rank's gradient divided by the world size
is its rows of the one-process gradient. So must the online linear classifier: its steps are
those of one process on the global batch, and its `val/linear_acc` one process's accuracy.
"""

import functools
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers.gloo_ranks import WORLD, D, N, global_views, rows, spawn
from lightning.pytorch.strategies import DDPStrategy

from orbitcl.callbacks import OnlineLinearClassifier
from orbitcl.data import DigitsDataModule
from orbitcl.losses import NTXentLoss, ORLLoss
from orbitcl.metrics.knn import knn_accuracy
from orbitcl.models import ConvEncoder, MLPProjector, TimmEncoder
from orbitcl.parallel.collectives import AllGather
from orbitcl.training.module import ContrastiveModule

TOLERANCE = 1e-9  # float64, absolute
LOSSES = {
    "ntxent": functools.partial(NTXentLoss, temperature=0.2),
    "orl": functools.partial(ORLLoss, temperature=0.2),
    "orl_t_min": functools.partial(ORLLoss, temperature=0.5, t_min=0.2),
    "orl_detached": functools.partial(ORLLoss, temperature=0.2, detach_tension=True),
}
for _negatives in ("cross_view", "within_view"):  # docs/geometry.md, "Which negatives"
    LOSSES[f"ntxent_{_negatives}"] = functools.partial(LOSSES["ntxent"], negatives=_negatives)
    LOSSES[f"orl_{_negatives}"] = functools.partial(LOSSES["orl"], negatives=_negatives)
    LOSSES[f"orl_detached_{_negatives}"] = functools.partial(
        LOSSES["orl_detached"], negatives=_negatives
    )


def _tiny_vit() -> torch.nn.Module:
    """A 1-block ViT for 16x16 images (timm's vit_tiny_patch16_224 narrowed to width 32, 4x4
    patches: 16 tokens and a class token) and a linear projector, in float64, from seed 0.

    The ViT normalises per token (LayerNorm), so its features do not depend on the batch; the
    default projector's BatchNorm would (per process under gloo: SyncBatchNorm runs on GPUs
    only, conf/trainer/ddp_cpu.yaml), hence one layer here."""
    torch.manual_seed(0)
    model_args = {"patch_size": 4, "depth": 1, "embed_dim": 32, "num_heads": 2}
    encoder = TimmEncoder("vit_tiny_patch16_224", img_size=16, model_args=model_args)
    return torch.nn.Sequential(encoder, MLPProjector(encoder.out_dim, 32, D, num_layers=1)).double()


def global_images() -> torch.Tensor:
    """Two views of the concatenated batch of images, (2, WORLD N, 3, 16, 16), float64."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, WORLD * N, 3, 16, 16, generator=g, dtype=torch.float64)


def _vit_step(model: torch.nn.Module, views: torch.Tensor, loss: torch.nn.Module) -> tuple:
    """The loss of one step's two views (2, B, 3, 16, 16), through the model in one forward
    (as the ContrastiveModule runs them), and the parameters' gradients after backward."""
    model.zero_grad()
    z_a, z_b = model(views.flatten(0, 1)).chunk(2)  # (B, D) each
    value = loss(z_a, z_b)
    value.backward()
    parameters = getattr(model, "module", model).named_parameters()  # DDP's names: module.NAME
    return value.detach(), {name: p.grad.clone() for name, p in parameters}


def _rank_losses(rank: int) -> dict:
    z_a, z_b = (z[rows(rank)].clone().requires_grad_() for z in global_views())
    out = {}
    for name, loss_cls in LOSSES.items():
        loss = loss_cls(gather_distributed=True)(z_a, z_b)
        out[name] = (loss.detach(), *torch.autograd.grad(loss, (z_a, z_b)))
    # A ViT under DDP, on this rank's rows of the images: DDP averages the ranks' gradients.
    model = torch.nn.parallel.DistributedDataParallel(_tiny_vit())
    views = global_images()[:, rows(rank)]
    for name in VIT_LOSSES:
        out[f"vit_{name}"] = _vit_step(model, views, LOSSES[name](gather_distributed=True))
    return out


VIT_LOSSES = ("ntxent", "orl")


@pytest.fixture(scope="module")
def exactness_ranks(tmp_path_factory) -> list[dict]:
    """What each rank of the 2-process exactness run (`_rank_losses`) returned."""
    return spawn(_rank_losses, tmp_path_factory.mktemp("exactness"))


def test_losses_across_processes_equal_the_one_process_loss(exactness_ranks):
    per_rank = exactness_ranks
    z_a, z_b = (z.requires_grad_() for z in global_views())
    worst = 0.0
    for name, loss_cls in LOSSES.items():
        loss = loss_cls()(z_a, z_b)  # one process, the concatenated batch
        grad_a, grad_b = torch.autograd.grad(loss, (z_a, z_b))
        mean = torch.stack([out[name][0] for out in per_rank]).mean()
        diffs = [(mean - loss.detach()).abs()]
        for rank, out in enumerate(per_rank):
            diffs.append((out[name][1] / WORLD - grad_a[rows(rank)]).abs().max())
            diffs.append((out[name][2] / WORLD - grad_b[rows(rank)]).abs().max())
        diff = float(torch.stack(diffs).max())
        print(f"{name}: max abs difference {diff:.1e}")
        assert diff < TOLERANCE, name
        worst = max(worst, diff)
    print(f"max abs difference, all losses: {worst:.1e}")


def test_vit_under_ddp_takes_the_one_process_step(exactness_ranks):
    """A ViT (timm's, through TimmEncoder) trained by 2 DDP processes on their halves of a batch
    gets, on every rank, the gradient one process computes on the whole batch; the ranks' mean
    loss is the one-process loss."""
    model = _tiny_vit()  # the same initial weights as the ranks'
    for name in VIT_LOSSES:
        loss, grads = _vit_step(model, global_images(), LOSSES[name]())
        per_rank = [out[f"vit_{name}"] for out in exactness_ranks]
        mean = torch.stack([rank_loss for rank_loss, _ in per_rank]).mean()
        diffs = [(mean - loss).abs()]
        for _, rank_grads in per_rank:
            assert rank_grads.keys() == grads.keys()
            diffs += [(rank_grads[k] - g).abs().max() for k, g in grads.items()]
        diff = float(torch.stack(diffs).max())
        scale = max(float(g.abs().max()) for g in grads.values())
        print(f"vit {name}: max abs difference {diff:.1e} (largest gradient {scale:.1e})")
        assert diff < TOLERANCE and scale > 1e-3, name  # and the gradients are not all zero


def _gather_with_grad(rank: int) -> tuple:
    x = torch.full((3, 2), float(rank + 1), dtype=torch.float64, requires_grad=True)
    y = AllGather.apply(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(rank), dtype=y.dtype)
    (y * weights).sum().backward()
    return y.detach(), x.grad, weights


def test_all_gather_sums_the_gradients_of_all_ranks(tmp_path):
    per_rank = spawn(_gather_with_grad, tmp_path)
    expected = torch.cat([torch.full((3, 2), float(r + 1), dtype=torch.float64) for r in range(2)])
    summed = sum(weights for _, _, weights in per_rank)  # d(sum of the ranks' outputs)/dy
    for rank, (y, grad, _) in enumerate(per_rank):
        assert torch.equal(y, expected)  # rank order
        assert torch.equal(grad, summed[3 * rank : 3 * (rank + 1)])


LINEAR_LR = 0.1


def _fit(rank: int, tmp: str) -> dict:
    """One rank of a 2-process DDP fit, joined as under torchrun: the environment tells Lightning
    the rank and world size (so it starts no processes), and it uses the existing process group."""
    os.environ.update(WORLD_SIZE=str(WORLD), NODE_RANK="0", RANK=str(rank), LOCAL_RANK=str(rank))
    L.seed_everything(0)
    encoder = ConvEncoder(widths=[8, 16])
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, hidden_dim=32, out_dim=16),
        NTXentLoss(0.5),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        knn_k=20,
        lr_scaling="linear",
    )
    datamodule = DigitsDataModule(batch_size=64, num_workers=0, eval_batch_size=256)
    linear = OnlineLinearClassifier(functools.partial(torch.optim.SGD, lr=LINEAR_LR, momentum=0.9))
    sampled = {"steps": []}

    class RecordShards(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            loader = trainer.train_dataloader
            sampled["sampler"] = list(loader.sampler)
            sampled["batches"] = [list(b) for b in loader.batch_sampler]

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            # What the online classifier trains on: this rank's features of all views, labels.
            views = outputs["features"]
            sampled["steps"].append((torch.cat(views), batch[1].repeat(len(views))))

    trainer = L.Trainer(
        accelerator="cpu",
        devices=WORLD,
        strategy=DDPStrategy(process_group_backend="gloo"),
        max_epochs=1,
        limit_train_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp,
        callbacks=[RecordShards(), linear],
    )
    trainer.fit(module, datamodule=datamodule)
    # The kNN of one process on all samples, with this rank's (synchronised) weights.
    module.eval()
    with torch.no_grad():
        # Eval batches are uint8, normalised on the device (outside Lightning: normalise).
        bank, queries = (
            (
                module(torch.cat([datamodule.normalise(x) for x, _ in loader])),
                torch.cat([y for _, y in loader]),
            )
            for loader in datamodule.val_dataloader()
        )
        predicted = linear.classifier(queries[0]).argmax(1)
    return {
        "gather": module.loss.gather_distributed,
        "is_global_zero": trainer.is_global_zero,
        "lr": module.optimizers().optimizer.param_groups[0]["lr"],  # no schedule
        "knn_acc": float(trainer.callback_metrics["val/knn_acc"]),
        "knn_acc_one_process": knn_accuracy(*queries, *bank, k=20, temperature=0.1),
        "linear_acc": float(trainer.callback_metrics["val/linear_acc"]),
        "linear_acc_one_process": float((predicted == queries[1]).float().mean()),
        "classifier": {k: v.clone() for k, v in linear.classifier.state_dict().items()},
        "train_size": len(datamodule.train_dataloader().dataset),
        **sampled,
    }


@pytest.fixture(scope="module")
def ddp_fit(tmp_path_factory) -> list[dict]:
    """What each rank of one 2-process DDP fit (`_fit`) returned."""
    tmp_path = tmp_path_factory.mktemp("ddp_fit")
    return spawn(_fit, tmp_path, str(tmp_path))


def test_ddp_fit_shards_the_data_and_gathers_the_knn(ddp_fit):
    per_rank = ddp_fit
    assert [out["is_global_zero"] for out in per_rank] == [True, False]
    assert all(out["gather"] for out in per_rank)  # switched on by the module
    # Each sample once per epoch across ranks: the samplers split the train split (padded with
    # WORLD - 1 repeats at most), and the batches used hold no sample twice.
    size = per_rank[0]["train_size"]
    sampled = [i for out in per_rank for i in out["sampler"]]
    assert set(sampled) == set(range(size)) and len(sampled) - size < WORLD
    used = [i for out in per_rank for batch in out["batches"] for i in batch]
    assert len(used) == len(set(used)) == WORLD * (-(-size // WORLD) // 64) * 64
    # The kNN ran on the features of all ranks, each sample once: identical on every rank, and
    # equal to one process's kNN on the whole bank and queries.
    accuracies = {out["knn_acc"] for out in per_rank}
    assert accuracies == {per_rank[0]["knn_acc_one_process"]}, per_rank


def test_lr_scaling_counts_every_process(ddp_fit):
    # lr_scaling="linear": 1e-3 x (64 images x 2 processes) / 256, on every rank.
    assert [out["lr"] for out in ddp_fit] == pytest.approx([1e-3 * 64 * WORLD / 256] * WORLD)


def test_online_linear_classifier_under_ddp_equals_one_process(ddp_fit):
    # Replayed in one process from the ranks' recorded features: plain SGD with momentum on the
    # mean cross-entropy of the global batch (the ranks' images of each step, concatenated).
    steps = list(zip(*(out["steps"] for out in ddp_fit), strict=True))
    assert len(steps) == 2  # limit_train_batches=2
    classifier = torch.nn.Linear(steps[0][0][0].shape[1], 10)
    torch.nn.init.zeros_(classifier.weight)
    torch.nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=LINEAR_LR, momentum=0.9)
    for step in steps:
        features, labels = (torch.cat(x) for x in zip(*step, strict=True))
        optimizer.zero_grad()
        F.cross_entropy(classifier(features), labels).backward()
        optimizer.step()
    for out in ddp_fit:  # both ranks hold the one-process classifier
        for name, value in classifier.state_dict().items():
            torch.testing.assert_close(out["classifier"][name], value, rtol=1e-5, atol=1e-6)
            assert value.abs().max() > 0  # it did learn
    # val/linear_acc: the predictions of all ranks, each test image once, the same on every rank
    # and equal to one process's accuracy on the whole test split.
    accuracies = {out["linear_acc"] for out in ddp_fit}
    assert accuracies == {ddp_fit[0]["linear_acc_one_process"]}, accuracies
    assert 0.1 < ddp_fit[0]["linear_acc"] <= 1.0


def _run_dir_files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


def test_ddp_cpu_command_line_trains_and_writes_one_checkpoint(tmp_path):
    """`python -m orbitcl.train trainer=ddp_cpu`: Lightning re-runs the command for rank 1 with the
    run directory of rank 0 (its Hydra support); only rank zero writes checkpoints and plots."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "orbitcl.train", "trainer=ddp_cpu", "trainer.max_steps=2"]
        + ["logger=csv", "dataset.num_workers=0", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kNN accuracy" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # rank 1 wrote into rank 0's dir
    files = _run_dir_files(run_dir)
    assert [f for f in files if f.endswith(".ckpt")] == [
        "checkpoints/epoch000-step000002.ckpt",
        "checkpoints/last.ckpt",
    ], files
    # Rank 1 runs with hydra.output_subdir=null: one .hydra, one metrics.csv.
    assert [f for f in files if f.startswith(".hydra/")] == [
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
    ]
    assert files.count("metrics.csv") == 1
    assert all(f.startswith("plots/") for f in files if f.endswith(".png"))
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2

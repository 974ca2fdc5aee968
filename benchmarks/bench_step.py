"""Training step (issue #7): Lightning's step against a plain PyTorch loop doing the same work.

The same model, loss, optimiser and schedule (``orbitcl.training.module.ContrastiveModule``
built from the config: MNIST's conv_small and NT-Xent by default, AdamW with warm-up + cosine),
on the same fixed pre-augmented batch. Lightning runs ``trainer.fit`` with the module's own
``training_step`` (logging included: a CSV logger every 10 steps, as ``logger=csv``; no progress
bar, no checkpoints, no validation); the plain loop runs forward, the loss over pairs of views,
``zero_grad``, ``backward``, ``step`` and the scheduler's step, on its own copy of the model.

Interleaved step by step, so that load on a shared machine hits both alike: after each
Lightning step a callback runs one plain step. Lightning's step time is the interval between
the starts of consecutive batches (its data fetching, hooks and logging included) less that
plain step. The ratio is the median over ``--steps`` steps after ``--warmup`` of Lightning step /
plain step. Target: <= 1.05x.

    .venv/bin/python benchmarks/bench_step.py [--steps 50] [--dataset mnist]
"""

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from itertools import combinations
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from timing import report
from torch.utils.data import DataLoader, Dataset

from orbitcl import CONF_DIR
from orbitcl.training.module import ContrastiveModule

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))


class SameBatch(Dataset):
    """`length` times the same batch (a DataLoader with batch_size=None serves it as is)."""

    def __init__(self, batch, length: int):
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.batch


class Interleaved(L.Callback):
    """Runs `plain_step` after every Lightning step; records both step times."""

    def __init__(self, plain_step):
        self.plain_step = plain_step
        self.lightning: list[float] = []  # batch start to next batch start, less the plain step
        self.plain: list[float] = []
        self._start: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = _now()
        if self._start is not None:
            self.lightning.append(now - self._start - self.plain[-1])
        self._start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        start = _now()
        self.plain_step()
        self.plain.append(_now() - start)


def _now() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def build_module(cfg) -> ContrastiveModule:
    torch.manual_seed(0)  # the same initial weights for both loops
    encoder = instantiate(cfg.model.encoder)
    projector = instantiate(cfg.model.projector, in_dim=encoder.out_dim)
    return ContrastiveModule(
        encoder,
        projector,
        instantiate(cfg.loss),
        instantiate(cfg.optim.optimizer),
        instantiate(cfg.optim.scheduler),
    )


def plain_loop(cfg, batch, total_steps: int):
    """One step of the plain loop per call, on its own copy of the model."""
    module = build_module(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module.to(device).train()
    views = [v.to(device) for v in batch[0]]
    optimizer = module.optimizer_factory(module.parameters())
    scheduler = module.scheduler_factory(optimizer, total_steps=total_steps)
    pairs = list(combinations(range(len(views)), 2))

    def step() -> None:
        z = module.projector(module.encoder(torch.cat(views))).chunk(len(views))  # V x (B, d)
        loss = torch.stack([module.loss(z[a], z[b]) for a, b in pairs]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    return step


def interleaved_step_times(cfg, batch, warmup: int, steps: int) -> tuple[list, list]:
    total = warmup + steps + 1
    clock = Interleaved(plain_loop(cfg, batch, total))
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(
            max_steps=total,
            accelerator="auto",
            devices=1,
            logger=CSVLogger(logs),
            log_every_n_steps=10,
            callbacks=[clock],
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(build_module(cfg), DataLoader(SameBatch(batch, total), batch_size=None))
    # lightning[i] is step i + 1's interval; pair it with the plain step run inside it.
    return clock.lightning[warmup:], clock.plain[warmup : warmup + steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # "GPU available: ..."
    warnings.filterwarnings("ignore")  # Lightning's hints (few workers, no validation, ...)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"dataset={args.dataset}", "dataset.pipeline=batched"])
    datamodule = instantiate(cfg.dataset, batch_size=args.batch_size, num_workers=0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, labels = datamodule.train_dataloader().dataset[torch.arange(args.batch_size)]
    batch = datamodule.batch_views(images, torch.Generator().manual_seed(0)), labels  # once

    lightning, plain = interleaved_step_times(cfg, batch, args.warmup, args.steps)
    ratios = [a / b for a, b in zip(lightning, plain, strict=True)]
    quartiles = statistics.quantiles(ratios, n=4)
    holds = report(
        f"{args.dataset}: Lightning step / plain PyTorch loop step",
        statistics.median(ratios),
        1.05,
        f"{type(datamodule).__name__}, {cfg.model.encoder._target_.rsplit('.', 1)[1]}, "
        f"{args.batch_size} images x {datamodule.n_views} views, median of {len(ratios)} "
        f"interleaved steps (quartiles {quartiles[0]:.3f}, {quartiles[2]:.3f}); per step: "
        f"Lightning {statistics.median(lightning) * 1e3:.1f} ms, "
        f"plain {statistics.median(plain) * 1e3:.1f} ms",
    )
    if not holds:
        raise SystemExit(1)  # `make bench` stops here: a regression must be noticed


if __name__ == "__main__":
    main()

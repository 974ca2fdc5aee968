"""Data pipeline (issue #7): batched augmentation against the per-sample torchvision pipeline,
and what augmenting costs a training step, on MNIST and CIFAR-10 (``$ORBITCL_DATA_DIR``, else
``../shared/data``) with their configs' augmentations (``src/orbitcl/conf/dataset/*.yaml``).

1. Augmentation throughput, one CPU thread each: the per-sample pipeline as one DataLoader worker
   runs it (``MultiViewDataset`` items, collated) against ``MultiViewDataModule.batch_views``
   (``dataset.pipeline=batched``), both making ``n_views`` normalised views of the same uint8
   images. Target: the batched one >= 10x the images/s (the median of per-round ratios).
2. A training step (the config's model and loss, AdamW: forward, backward, step) on views the
   batched pipeline makes from a uint8 batch first, against the same step on views made
   beforehand, with the CPU's threads. Target: <= 1.1x.

Both timed as the median of per-round ratios of the two run back to back in alternating order
(``timing.median_ratio``): load that drifts between rounds cancels. Run it twice: these machines
are noisy.

    .venv/bin/python benchmarks/bench_data.py [--repeats 9] [--cifar-step-batch 16]
"""

import argparse
import logging
import os
from itertools import combinations
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from timing import median_ratio, report
from torch.utils.data import default_collate

from orbitcl import CONF_DIR
from orbitcl.data import MultiViewDataset

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
logging.getLogger("orbitcl.data.sources").setLevel(logging.ERROR)  # the CIFAR-10 subset note


def compose_config(dataset: str, *overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", [f"dataset={dataset}", "dataset.pipeline=batched", *overrides])


def datamodule_of(cfg):
    datamodule = instantiate(cfg.dataset, num_workers=0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def augmentation_speedup(dataset: str, batch_size: int, repeats: int) -> bool:
    datamodule = datamodule_of(compose_config(dataset))
    images, labels = datamodule.train_dataloader().dataset[torch.arange(batch_size)]
    n_views = datamodule.n_views
    items = MultiViewDataset(images, labels, datamodule.train_transform, n_views)
    generator = torch.Generator().manual_seed(0)

    def per_sample():  # what one DataLoader worker does for a batch
        return default_collate([items[i] for i in range(batch_size)])

    def batched():
        return datamodule.batch_views(images, generator)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # per-sample time / batched time, paired per round
        speedup, per_sample_s, batched_s = median_ratio(per_sample, batched, repeats)
    finally:
        torch.set_num_threads(threads)
    return report(
        f"{dataset}: batched / per-sample augmentation images/s, 1 CPU thread",
        speedup,
        10,
        f"{batch_size} images x {n_views} views, median of {repeats} paired rounds; images/s: "
        f"batched {batch_size / batched_s:.0f}, per-sample {batch_size / per_sample_s:.0f}",
        at_least=True,
    )


def step_with_augmentation(dataset: str, batch_size: int, repeats: int) -> bool:
    cfg = compose_config(dataset, f"dataset.batch_size={batch_size}")
    datamodule = datamodule_of(cfg)
    images, _ = datamodule.train_dataloader().dataset[torch.arange(batch_size)]
    torch.manual_seed(0)
    encoder = instantiate(cfg.model.encoder)
    projector = instantiate(cfg.model.projector, in_dim=encoder.out_dim)
    loss_fn = instantiate(cfg.loss)
    optimizer = instantiate(cfg.optim.optimizer)([*encoder.parameters(), *projector.parameters()])
    generator = torch.Generator().manual_seed(0)
    augmented = datamodule.batch_views(images, generator)

    def step(views):
        z = projector(encoder(torch.cat(views))).chunk(len(views))  # V x (B, d)
        loss = torch.stack([loss_fn(z[a], z[b]) for a, b in combinations(range(len(z)), 2)])
        optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        optimizer.step()

    ratio, augmenting, pre_augmented = median_ratio(
        lambda: step(datamodule.batch_views(images, generator)), lambda: step(augmented), repeats
    )
    return report(
        f"{dataset}: train step with batched augmentation / on pre-augmented views, CPU",
        ratio,
        1.1,
        f"{type(encoder).__name__}, {batch_size} images x {datamodule.n_views} views, "
        f"{torch.get_num_threads()} threads; median of {repeats} paired rounds; step "
        f"{pre_augmented * 1e3:.0f} ms, with augmentation {augmenting * 1e3:.0f} ms",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=256, help="images per augmentation batch")
    parser.add_argument("--cifar-step-batch", type=int, default=16, help="ResNet-18 on a CPU")
    args = parser.parse_args()
    ok = [augmentation_speedup(name, args.batch, args.repeats) for name in ("mnist", "cifar10")]
    ok.append(step_with_augmentation("mnist", 256, 2 * args.repeats + 1))
    ok.append(step_with_augmentation("cifar10", args.cifar_step_batch, 2 * args.repeats + 1))
    print(f"bench_data: {sum(ok)} of {len(ok)} targets hold")
    if not all(ok):
        raise SystemExit(1)  # `make bench` stops here: a regression must be noticed


if __name__ == "__main__":
    main()

"""Backbones (issue #24): forward+backward images/s of each encoder at its dataset's image size.

Each encoder is built from its preset as training builds it (`model=NAME dataset=DATASET`), then
timed on a fixed random batch: forward, the mean square of the features, backward. Encoders are
timed interleaved (A B C D A B C D ...) so that load on a shared machine hits them alike; the
table gives each one's median images/s and its time per image against conv_small's, measured in
the same run. Prints a Markdown table (the one in docs/backbones.md).

    .venv/bin/python benchmarks/bench_backbones.py [--batch-size 16] [--repeats 3] [--device cpu]
"""

import argparse

import torch
from hydra import compose, initialize_config_dir
from timing import median_times

from orbitcl import CONF_DIR
from orbitcl.training.config import build

# (preset, dataset, channels, image side): each backbone at the size it trains at.
BACKBONES = [
    ("conv_small", "mnist", 1, 28),
    ("resnet18_cifar", "cifar10", 3, 32),
    ("vit_tiny_cifar", "cifar10", 3, 32),
    ("resnet50", "stl10", 3, 96),
]


def encoder(preset: str, dataset: str) -> torch.nn.Module:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"model={preset}", f"dataset={dataset}"])
    return build("model.encoder", cfg.model.encoder)


def step(model: torch.nn.Module, images: torch.Tensor):
    """One forward+backward, as a training step runs it: (B, C, H, W) -> (B, out_dim)."""

    def run():
        model.zero_grad(set_to_none=True)
        model(images).square().mean().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    models, steps = {}, {}
    for preset, dataset, channels, side in BACKBONES:
        models[preset] = encoder(preset, dataset).to(args.device).train()
        images = torch.randn(args.batch_size, channels, side, side, device=args.device)
        steps[preset] = step(models[preset], images)
    seconds = median_times(steps, repeats=args.repeats, warmup=1)
    print(f"batch {args.batch_size}, {args.device}, median of {args.repeats} interleaved rounds\n")
    print("| backbone | dataset (size) | parameters | images/s | time per image vs conv_small |")
    print("|---|---|---|---|---|")
    for preset, dataset, channels, side in BACKBONES:
        count = sum(p.numel() for p in models[preset].parameters())
        rate = args.batch_size / seconds[preset]
        ratio = seconds[preset] / seconds["conv_small"]
        shape = f"{dataset} ({channels}x{side}x{side})"
        print(f"| {preset} | {shape} | {count / 1e6:.2f}M | {rate:.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()

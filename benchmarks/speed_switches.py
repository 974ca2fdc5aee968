"""What the speed switches give (docs/speed.md): time per training step with
``model.channels_last``, ``trainer.precision=bf16-mixed`` and ``model.compile`` against eager
float32, each alone, on the device at hand (the GPU if there is one).

A plain loop step (forward, loss over pairs of views, backward, AdamW step) of the config's model
and loss on one fixed pre-augmented batch; bf16-mixed is Lightning's: the forward and the loss
under ``torch.autocast(dtype=torch.bfloat16)``. Timed interleaved (``timing.py``) after two
warm-up steps, which for ``compile`` include compiling (reported apart). Not a ``bench_*`` file:
compiling takes minutes on a small CPU.

    .venv/bin/python benchmarks/speed_switches.py [--dataset mnist] [--batch-size 256]
"""

import argparse
import contextlib
import os
import time
from itertools import combinations
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from timing import median_times

from orbitcl import CONF_DIR
from orbitcl.training.speed import apply_speed_switches

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
VARIANTS = {
    "eager fp32": {},
    "channels_last": {"channels_last": True},
    "bf16-mixed": {"bf16": True},
    "compile": {"compile": True},
}


def step_function(cfg, views, device, channels_last=False, bf16=False, compile=False):
    torch.manual_seed(0)
    encoder = instantiate(cfg.model.encoder).to(device)
    projector = instantiate(cfg.model.projector, in_dim=encoder.out_dim).to(device)
    loss_fn = instantiate(cfg.loss)
    apply_speed_switches(encoder, projector, channels_last=channels_last, compile=compile)
    optimizer = instantiate(cfg.optim.optimizer)([*encoder.parameters(), *projector.parameters()])
    pairs = list(combinations(range(len(views)), 2))
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if bf16
        else contextlib.nullcontext
    )

    def step():
        with autocast():
            z = projector(encoder(torch.cat(views))).chunk(len(views))  # V x (B, d)
            loss = torch.stack([loss_fn(z[a], z[b]) for a, b in pairs]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"dataset={args.dataset}", "dataset.pipeline=batched"])
    datamodule = instantiate(cfg.dataset, num_workers=0)
    datamodule.setup("fit")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = datamodule.train_dataloader().dataset.images[: args.batch_size].to(device)
    views = datamodule.batch_views(images, torch.Generator().manual_seed(0))
    steps = {name: step_function(cfg, views, device, **kw) for name, kw in VARIANTS.items()}
    start = time.perf_counter()
    steps["compile"]()  # compiles
    print(f"compile: first step {time.perf_counter() - start:.1f} s (compiling)")
    times = median_times(steps, repeats=args.repeats, warmup=2)
    what = f"{args.dataset}, {type(datamodule).__name__}, {args.batch_size} x 2 views, {device}"
    for name, t in times.items():
        print(f"{name}: {t * 1e3:.0f} ms/step, {t / times['eager fp32']:.3f}x eager fp32  [{what}]")


if __name__ == "__main__":
    main()

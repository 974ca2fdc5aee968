"""The losses beyond negatives (issue #25): each new loss's step against NT-Xent's, in one run.

A step is what the loss adds to a training step: forward + backward of the loss on MNIST
conv_small projections of the default batch (256 images x 2 views, d = 128, float32, CPU), and
where the method has them the predictor's forward + backward (``model.predictor`` from the loss's
config: SimSiam's 128 -> 32 -> 128, BYOL's 128 -> 256 -> 128) and BYOL's EMA update at its cosine
rate of the target encoder and projector
(``orbitcl.training.momentum.MomentumEncoder``, conv_small's 0.3 M parameters). The projections
are conv_small's (seed 0) of one fixed MNIST batch of views; BYOL's targets are the EMA copy's
projections of the same views, computed once: the target network's forward pass is an encoder
pass, the cost of a model and not of the loss, and is not timed (``bench_step.py`` times whole
training steps). NT-Xent (temperature 0.5, the default loss) is timed interleaved with the
others, round by round (``timing.py``). Target: each <= 1.3x NT-Xent's step.

    .venv/bin/python benchmarks/bench_nonneg.py [--repeats 40] [--batch-size 256]
"""

import argparse
import os
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from timing import median_times, report

from orbitcl import CONF_DIR
from orbitcl.training.momentum import MomentumEncoder

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
TARGET = 1.3  # a loss's step / NT-Xent's
TWO_VIEW = ("vicreg", "barlow_twins", "npair", "lifted")  # loss(z_a, z_b), as NT-Xent
PREDICTED = ("simsiam", "byol")  # loss(p_a, p_b, targets_a, targets_b)


def config(loss: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", ["dataset=mnist", f"loss={loss}", "dataset.pipeline=batched"])


def projections(cfg, batch_size: int):
    """(encoder, projector, views (2, B, 1, 28, 28), z_a, z_b (B, d) leaves with gradients)."""
    datamodule = instantiate(cfg.dataset, batch_size=batch_size, num_workers=0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, _ = datamodule.train_dataloader().dataset[torch.arange(batch_size)]
    views = datamodule.batch_views(images, torch.Generator().manual_seed(0))  # 2 x (B, C, H, W)
    torch.manual_seed(0)
    encoder = instantiate(cfg.model.encoder)
    projector = instantiate(cfg.model.projector, in_dim=encoder.out_dim)
    with torch.no_grad():
        z = projector(encoder(torch.cat(views))).chunk(2)  # 2 x (B, d)
    z_a, z_b = (t.detach().clone().requires_grad_(True) for t in z)
    return encoder, projector, views, z_a, z_b


def two_view_step(loss_fn, z_a, z_b):
    def run():
        z_a.grad = z_b.grad = None
        loss_fn(z_a, z_b).backward()

    return run


def predicted_step(loss_fn, predictor, z_a, z_b, targets, after=None):
    """The predictor on both views' projections, the loss against ``targets`` (z itself for
    SimSiam, the EMA network's keys for BYOL), backward, then ``after()`` (BYOL's EMA update)."""

    def run():
        z_a.grad = z_b.grad = None
        predictor.zero_grad(set_to_none=True)
        p_a, p_b = predictor(torch.cat([z_a, z_b])).chunk(2)  # 2 x (B, d)
        loss_fn(p_a, p_b, *targets).backward()
        if after is not None:
            after()

    return run


def ema_update(ema: MomentumEncoder, encoder, projector, total_steps: int = 10**4):
    """One EMA step per call at the rate of the next optimiser step (a host float)."""
    steps = iter(range(10**9))

    def run():
        ema.update(encoder, projector, ema.rate(next(steps), total_steps))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    base = config("ntxent")
    encoder, projector, views, z_a, z_b = projections(base, args.batch_size)
    d = z_a.shape[1]
    fns = {"ntxent": two_view_step(instantiate(base.loss), z_a, z_b)}
    for name in TWO_VIEW:
        fns[name] = two_view_step(instantiate(config(name).loss), z_a, z_b)
    torch.manual_seed(1)
    simsiam, byol = config("simsiam"), config("byol")  # each brings its model.predictor
    head = instantiate(simsiam.model.predictor, in_dim=d)
    fns["simsiam"] = predicted_step(instantiate(simsiam.loss), head, z_a, z_b, (z_a, z_b))
    loss = instantiate(byol.loss)
    ema = MomentumEncoder(encoder, projector, loss.momentum, loss.momentum_schedule)
    with torch.no_grad():
        keys = ema(torch.cat(views)).chunk(2)  # 2 x (B, d): the target network's, once
    head = instantiate(byol.model.predictor, in_dim=d)
    fns["byol"] = predicted_step(loss, head, z_a, z_b, keys, ema_update(ema, encoder, projector))

    times = median_times(fns, repeats=args.repeats, warmup=2)
    n_params = sum(p.numel() for p in [*encoder.parameters(), *projector.parameters()])
    print(
        f"loss steps, forward + backward, float32, MNIST conv_small projections, "
        f"{args.batch_size} images x 2 views, d = {d}, {torch.get_num_threads()} threads; "
        f"median of {args.repeats} interleaved rounds; BYOL's EMA over {n_params} parameters"
    )
    for name, t in times.items():
        print(f"  {name:13s} {t * 1e3:8.2f} ms")
    holds = [
        report(
            f"{name} step / ntxent step",
            times[name] / times["ntxent"],
            TARGET,
            f"{times[name] * 1e3:.2f} ms vs {times['ntxent'] * 1e3:.2f} ms",
        )
        for name in (*TWO_VIEW, *PREDICTED)
    ]
    if not all(holds):
        raise SystemExit(1)  # `make bench` stops here: a regression must be noticed


if __name__ == "__main__":
    main()

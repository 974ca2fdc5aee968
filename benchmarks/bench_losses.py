"""Loss kernels: NT-Xent and ORL against lightly's NTXentLoss and the matmul floor (issue #7).

Forward + backward, float32, CPU, 2N = 4096 anchors of d = 128 (``--n``, ``--d`` change them).
Every candidate is timed interleaved with the baselines in the same run (``timing.py``):

- lightly's ``NTXentLoss`` (SimCLR's loss as most people run it);
- the floor: three bare ``(2N x d) @ (d x 2N)`` matrix products, the work no implementation can
  skip (the Gram matrix and the two products of its backward).

Targets: our NT-Xent <= 0.8x lightly's time, ORL <= 1.2x lightly's NT-Xent. Then each choice of
``negatives`` (cross_view, within_view) against ``all`` for NT-Xent and ORL (target <= 1.1x:
the switch masks quadrants of the same blocks, it must not slow them down). Then the peak
memory of ORL against NT-Xent at 2N = 4096, 8192 and 16384: the peak RSS growth of one
forward + backward, each in a fresh process (as ``tests/losses/test_ntxent_orl.py`` measures it).

    .venv/bin/python benchmarks/bench_losses.py [--repeats 15] [--no-memory]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from timing import median_times, report

from orbitcl.losses import NTXentLoss, ORLLoss, kernels

TEMPERATURE = 0.5
TARGETS = {"ntxent": 0.8, "orl": 1.2}  # time / lightly's NTXentLoss
NEGATIVES_TARGET = 1.1  # a variant's time / the same loss with negatives="all"
MEMORY_SIZES = (4096, 8192, 16384)  # 2N
MEMORY_LOSSES = ("ntxent", "orl", "orl_eager")  # orl: ORL's default kernels
WEIGHTED_TARGET = 1.5  # weighted InfoNCE losses: time / our NTXentLoss
CLASSES = 10


def views(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(n, d, generator=g, requires_grad=True) for _ in range(2))


def step(loss_fn, z_a, z_b):
    """One forward + backward, as a training step runs it."""

    def run():
        z_a.grad = z_b.grad = None
        loss_fn(z_a, z_b).backward()

    return run


def labelled_step(loss_fn, z_a, z_b, labels):
    """``step`` for a loss that takes the batch's labels; building its weights is timed too."""
    return step(lambda a, b: loss_fn(a, b, labels), z_a, z_b)


def floor(n: int, d: int):
    """Three bare (2N x d) @ (d x 2N) products, each into a fresh output as a loss would."""
    z = torch.randn(2 * n, d, generator=torch.Generator().manual_seed(1))

    def run():
        for _ in range(3):
            z @ z.T

    return run


def time_losses(n: int, d: int, repeats: int) -> bool:
    from lightly.loss import NTXentLoss as LightlyNTXentLoss

    z_a, z_b = views(n, d)
    default = kernels.default_backend()
    fns = {
        "lightly": step(LightlyNTXentLoss(TEMPERATURE), z_a, z_b),
        "ntxent": step(NTXentLoss(TEMPERATURE), z_a, z_b),
        "orl": step(ORLLoss(TEMPERATURE), z_a, z_b),
        "orl_eager": step(ORLLoss(TEMPERATURE, backend="eager"), z_a, z_b),
        "orl_detached": step(ORLLoss(TEMPERATURE, detach_tension=True), z_a, z_b),
        "floor": floor(n, d),
    }
    start = time.perf_counter()
    fns["orl"]()  # compiles ORL's kernels where they are compiled (not timed)
    fns["orl_detached"]()
    print(
        f"loss kernels, forward + backward, float32, 2N = {2 * n}, d = {d}, "
        f"{torch.get_num_threads()} threads; ORL's kernels: {default} "
        f"(first calls {time.perf_counter() - start:.1f} s); median of {repeats} interleaved rounds"
    )
    times = median_times(fns, repeats=repeats, warmup=1)
    for name, t in times.items():
        print(f"  {name:13s} {t * 1e3:8.1f} ms  {t / times['floor']:5.2f}x the 3-matmul floor")
    holds = [
        report(
            f"{name} / lightly NTXentLoss",
            times[name] / times["lightly"],
            TARGETS[name.removesuffix("_eager")],
            f"{times[name] * 1e3:.1f} ms vs {times['lightly'] * 1e3:.1f} ms",
        )
        for name in ("ntxent", "orl", "orl_eager")
    ]
    print(f"orl / our ntxent: {times['orl'] / times['ntxent']:.3f}x (context, no target)")
    return all(holds)


def time_negatives(n: int, d: int, repeats: int) -> bool:
    """Each variant of ``negatives`` against ``all``, interleaved, for NT-Xent and ORL."""
    z_a, z_b = views(n, d)
    fns = {}
    for name, make in (("ntxent", NTXentLoss), ("orl", ORLLoss)):
        for negatives in kernels.NEGATIVES:
            fns[f"{name}_{negatives}"] = step(make(TEMPERATURE, negatives=negatives), z_a, z_b)
    for fn in fns.values():
        fn()  # compiles ORL's kernels for each variant (not timed)
    times = median_times(fns, repeats=repeats, warmup=1)
    print(f"negatives, forward + backward, 2N = {2 * n}, d = {d}: each variant / all")
    holds = []
    for name in ("ntxent", "orl"):
        base = times[f"{name}_all"]
        for negatives in kernels.NEGATIVES[1:]:
            t = times[f"{name}_{negatives}"]
            label = f"{name} negatives={negatives} / all"
            detail = f"{t * 1e3:.1f} ms vs {base * 1e3:.1f} ms"
            holds.append(report(label, t / base, NEGATIVES_TARGET, detail))
    return all(holds)


# Peak RSS from /proc (VmHWM, KiB), not getrusage: ru_maxrss survives fork + exec, so a child
# of a large parent (this benchmark, pytest) would start at the parent's peak.
PEAK_MEMORY_SCRIPT = """
import sys, torch
from orbitcl.losses import NTXentLoss, ORLLoss
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
name, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
backend = {"backend": "eager"} if name == "orl_eager" else {}
loss_fn = NTXentLoss(0.5) if name == "ntxent" else ORLLoss(0.5, **backend)
g = torch.Generator().manual_seed(0)
z_a, z_b = (torch.randn(n, d, generator=g, requires_grad=True) for _ in range(2))
loss_fn(z_a[:4], z_b[:4]).backward()  # warm-up: lazy initialisation, grad buffers
before = status("VmHWM")
loss_fn(z_a, z_b).backward()  # the first call: scratch buffers, compiling
first = status("VmHWM") - before
open("/proc/self/clear_refs", "w").write("5")  # resets the peak RSS to the current RSS
before = status("VmRSS")
loss_fn(z_a, z_b).backward()  # a later step
print(first, status("VmHWM") - before)
"""


def peak_memory_mib(loss_name: str, n: int, d: int) -> tuple[float, float]:
    """Peak RSS growth of a first and a later forward + backward in a fresh process, MiB."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_SCRIPT, loss_name, str(n), str(d)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    first, later = done.stdout.split()
    return int(first) / 2**10, int(later) / 2**10


def measure_memory(d: int) -> None:
    print(
        f"peak RSS growth of one forward + backward, float32, d = {d}, fresh process: first "
        "call (as tests/losses/test_ntxent_orl.py measures it) / a later call"
    )
    for size in MEMORY_SIZES:
        peaks = {name: peak_memory_mib(name, size // 2, d) for name in MEMORY_LOSSES}
        print(
            f"  2N = {size:5d} (one 2N x 2N float32 matrix: {size * size * 4 / 2**20:.0f} MiB): "
            + ", ".join(f"{name} {a:.0f} / {b:.0f} MiB" for name, (a, b) in peaks.items())
        )
        ntxent = max(peaks["ntxent"][0], 1.0)
        print(
            f"    ORL / NT-Xent, first call: {peaks['orl'][0] / ntxent:.1f}x, "
            f"eager {peaks['orl_eager'][0] / ntxent:.1f}x"
        )


def time_weighted(n: int, d: int, repeats: int) -> bool:
    """The weighted InfoNCE losses (``orbitcl.losses.weighted``) against our NT-Xent."""
    from orbitcl.losses import SoftSupConLoss, SupConLoss, XCLRLoss, YAwareLoss

    z_a, z_b = views(n, d)
    g = torch.Generator().manual_seed(2)
    classes = torch.randint(CLASSES, (n,), generator=g)
    angles = torch.rand(n, generator=g) * 2 * torch.pi
    continuous = torch.stack([angles.cos(), angles.sin()], 1)  # (N, 2): labels on the circle
    similarity = torch.rand(CLASSES, CLASSES, generator=g).tolist()
    fns = {
        "ntxent": step(NTXentLoss(TEMPERATURE), z_a, z_b),
        "supcon": labelled_step(SupConLoss(TEMPERATURE), z_a, z_b, classes),
        "soft_supcon": labelled_step(SoftSupConLoss(TEMPERATURE), z_a, z_b, classes),
        "y_aware": labelled_step(YAwareLoss(TEMPERATURE), z_a, z_b, continuous),
        "xclr": labelled_step(XCLRLoss(TEMPERATURE, 0.1, similarity), z_a, z_b, classes),
    }
    print(
        f"weighted InfoNCE, forward + backward (weights built from the labels included), "
        f"float32, 2N = {2 * n}, d = {d}; median of {repeats} interleaved rounds"
    )
    times = median_times(fns, repeats=repeats, warmup=1)
    holds = [
        report(
            f"{name} / our NTXentLoss",
            times[name] / times["ntxent"],
            WEIGHTED_TARGET,
            f"{times[name] * 1e3:.1f} ms vs {times['ntxent'] * 1e3:.1f} ms",
        )
        for name in ("supcon", "soft_supcon", "y_aware", "xclr")
    ]
    return all(holds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="images per batch (2N anchors)")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    holds = time_losses(args.n, args.d, args.repeats)
    holds &= time_weighted(args.n, args.d, args.repeats)
    holds &= time_negatives(args.n, args.d, args.repeats)
    if not args.no_memory and sys.platform == "linux":  # ru_maxrss is in KiB on Linux
        measure_memory(args.d)
    print("loss kernels: all targets hold" if holds else "loss kernels: a target DOES NOT HOLD")
    if not holds:
        raise SystemExit(1)  # `make bench` stops here: a regression must be noticed


if __name__ == "__main__":
    main()

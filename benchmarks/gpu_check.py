"""The GPU check (`make gpu-check`): one prepared command for whenever a GPU machine is lent.

Five parts, each with its own time cap, so the whole stays under 8 minutes on one H100; a part
that fails prints its error and the check goes on. It prints everything and writes it, with the
card's name, torch's version and the date, to ``benchmarks/results/gpu.md``:

- (a) the `gpu` tests (``pytest -m gpu tests/gpu``);
- (b) NT-Xent and ORL forward + backward: time and peak ``torch.cuda.max_memory_allocated`` at
  2N = 8192 ... 131072, d = 128, fp32 and bf16 inputs, beside lightly's ``NTXentLoss``, a dense
  ``cross_entropy`` over the full logits (OOM reported as OOM) and the 3-GEMM floor: the three
  (2N x d) @ (d x 2N) products a blocked loss must do (its Gram rows and their backward), in
  IEEE fp32, the precision the losses compute in whatever the input dtype. Targets at 2N =
  65536, fp32: NT-Xent under 1 GiB of peak memory and <= 1.5x the floor, ORL <= 2.5x;
- (c) training steps, MNIST conv_small and CIFAR-10 ResNet-18: the batched augmentation on the
  GPU against the per-sample pipeline of one DataLoader worker (target >= 20x the images/s for
  CIFAR-10), and Lightning's step against a plain PyTorch loop (``bench_step.py``; <= 1.1x);
- (d) the time for ``+experiment=orl_mnist_fast`` to reach kNN accuracy 0.97
  (``time_to_knn.py``'s overrides, trained in the part's own process: start-up excluded);
- (e) with two GPUs or more: NT-Xent and ORL gathered across NCCL ranks against one process on
  the whole batch (exactness), and their time.

The exit status is 1 when a part failed, timed out or missed a target ("DOES NOT HOLD").
``--cpu-smoke`` runs every part in this process on the CPU at tiny sizes (no memory figures,
no targets judged, torch.compile left out): the default test run runs it, so it cannot rot.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu.md] [--parts abcde]
    python benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu-smoke.md
"""

import argparse
import contextlib
import csv
import gc
import io
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "benchmarks", ROOT / "tests"):  # timing.py & co; the gpu tests' bodies
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("WANDB_MODE", "disabled")

from record_results import provenance  # noqa: E402 -- benchmarks/ is on the path from here

TEMPERATURE = 0.5
MEMORY_TARGET_MIB = 1024  # NT-Xent's peak at 2N = 65536, fp32
FLOOR_TARGETS = {"ntxent": 1.5, "orl": 2.5}  # time / the 3-GEMM floor, at 2N = 65536, fp32
TARGET_SIZE = 65536
AUGMENT_TARGET = 20.0  # batched / per-sample images/s, CIFAR-10
STEP_TARGET = 1.1  # Lightning step / plain loop step
KNN_TARGET = 0.97


@dataclass(frozen=True)
class Scale:
    """Sizes and time caps of one mode of the check."""

    device: str
    loss_sizes: tuple[int, ...]  # 2N, measured in this order (the target's size first)
    dim: int
    dtypes: tuple[torch.dtype, ...]
    repeats: int
    augment_batch: int
    step_batch: dict[str, int]
    step_warmup: int
    steps: int
    knn_overrides: tuple[str, ...]
    knn_target: float
    caps: dict[str, int]  # seconds per part
    judged: bool  # whether the targets are judged
    # The floor's products in blocks of rows (8192 x 2N outputs, 4 GiB at 2N = 131072): large
    # enough to run at the GEMM's full rate, without the (2N, 2N) output a blocked loss never
    # holds.
    floor_rows: int = 8192
    body_sizes: dict = field(default_factory=dict)  # the gpu tests' bodies, smoke only


FULL = Scale(
    device="cuda",
    loss_sizes=(TARGET_SIZE, 8192, 32768, 131072),
    dim=128,
    dtypes=(torch.float32, torch.bfloat16),
    repeats=5,
    augment_batch=512,
    step_batch={"mnist": 256, "cifar10": 256},
    step_warmup=10,
    steps=40,
    knn_overrides=(),
    knn_target=KNN_TARGET,
    # 420 s; with the wheels' install and the start-ups (~30 s) the whole stays under 8 min
    caps={"a": 75, "b": 120, "c": 85, "d": 100, "e": 40},
    judged=True,
)
SMOKE = Scale(
    device="cpu",
    loss_sizes=(32, 16),
    dim=8,
    dtypes=(torch.float32, torch.bfloat16),
    repeats=1,
    augment_batch=4,
    step_batch={"mnist": 4, "cifar10": 2},
    step_warmup=1,
    steps=2,
    knn_overrides=(
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.precision=32-true",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "dataset.batch_size=4",
        "dataset.eval_batch_size=32",
        "dataset.num_workers=0",
        "model.channels_last=false",
    ),
    knn_target=0.0,  # reached at the first validation: the path, not the figure
    caps={"a": 60, "b": 60, "c": 60, "d": 60, "e": 60},
    judged=False,
    floor_rows=12,  # a short last block too
    body_sizes={"n": 8, "aug": 4, "bf16": 2, "tension": 16, "dist": 4},
)
PARTS = {
    "a": "gpu tests",
    "b": "loss kernels: time and peak memory",
    "c": "training steps",
    "d": "time to MNIST kNN 0.97",
    "e": "NCCL exactness and time",
}


class DoesNotHold(Exception):
    """A target was missed: the part printed its "DOES NOT HOLD" lines."""


class Budget:
    """The part's time left, so that it skips its remaining measurements before its cap."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def verdict(name: str, value: float, target: float, scale: Scale, unit: str = "x", at_least=False):
    """Prints `name: value (target ...) holds|DOES NOT HOLD` (smoke: not judged); whether it
    held."""
    holds = value >= target if at_least else value <= target
    judged = ("holds" if holds else "DOES NOT HOLD") if scale.judged else "not judged (smoke)"
    print(
        f"{name}: {value:.3f}{unit} (target {'>=' if at_least else '<='} {target}{unit}) {judged}"
    )
    return holds or not scale.judged


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def free_memory() -> None:
    """Returns the device memory of what was dropped (after an OOM, its traceback's frames) to
    CUDA. Nothing on the CPU, where a collection of torch's large heap costs ~1 s."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


# --- (a) the gpu tests -------------------------------------------------------------------------


def part_tests(scale: Scale, budget: Budget) -> None:
    if scale.device == "cuda":
        command = [sys.executable, "-m", "pytest", "-v", "-m", "gpu", "-n", "0", "tests/gpu"]
        command += ["-p", "no:cacheprovider", "-rs"]
        print("$ " + " ".join(command[2:]), flush=True)
        code, _ = run_capped(command, budget.left())
        if code != 0:
            raise RuntimeError(f"pytest -m gpu ended with status {code}")
        return
    # The CPU smoke runs the tests' bodies (tests/helpers/gpu_checks.py) on the CPU, small.
    from helpers import gpu_checks

    sizes = scale.body_sizes
    print(f"blocked vs float64: {gpu_checks.blocked_losses_match_float64('cpu', n=sizes['n'])}")
    print(
        f"augmentation, vs CPU: {gpu_checks.batched_augmentation_matches_cpu('cpu', sizes['aug'])}"
    )
    print(f"bf16 step (bf16, fp32 loss): {gpu_checks.bf16_step_trains('cpu', n=sizes['bf16'])}")
    pinned, unpinned = gpu_checks.tension_precision_under_tf32("cpu", n=sizes["tension"])
    print(f"T vs float64 under TF32: pinned {pinned:.1e}, unpinned (TF32 emulated) {unpinned:.1e}")
    print("compiled = eager: left out of the smoke (torch.compile takes tens of seconds)")


def run_capped(command: list[str], cap: float, env: dict | None = None) -> tuple[int, str]:
    """Runs `command`, echoing its output; after `cap` seconds kills its whole process group.
    Returns (status, output); status 124 when it was killed."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its children too are killed at the cap
    )
    lines: list[str] = []

    def echo() -> None:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        process.wait(timeout=max(cap, 1.0))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(timeout=5)
        message = f"TIMED OUT: killed after its cap of {cap:.0f} s\n"
        sys.stdout.write(message)
        return 124, "".join(lines) + message
    reader.join(timeout=5)
    return process.returncode, "".join(lines)


# --- (b) loss kernels --------------------------------------------------------------------------


def dense_cross_entropy(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """NT-Xent as one ``cross_entropy`` over the full (2N, 2N) logits (self entries -inf)."""
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
    logits = (z @ z.T / TEMPERATURE).fill_diagonal_(float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(z), device=z.device).roll(len(z_a)))


def loss_candidates(z: torch.Tensor, lightly_loss, floor_rows: int) -> dict:
    """name -> a forward + backward (or the floor's three products) on views (N, d) x 2."""
    from orbitcl.losses import NTXentLoss, ORLLoss

    n = len(z) // 2
    z_a, z_b = z[:n].detach().requires_grad_(), z[n:].detach().requires_grad_()
    ieee = F.normalize(z.detach().float(), dim=1)

    def step(loss_fn):
        def run():
            z_a.grad = z_b.grad = None
            loss_fn(z_a, z_b).backward()

        return run

    rows = min(len(z), floor_rows)
    out = ieee.new_empty(rows, len(z))  # the floor's output: row blocks, as a blocked loss

    def floor():
        from orbitcl.losses.kernels.precision import ieee_fp32

        with ieee_fp32():
            for _ in range(3):
                for lo in range(0, len(z), rows):
                    torch.mm(ieee[lo : lo + rows], ieee.T, out=out[: len(ieee[lo : lo + rows])])

    candidates = {
        "ntxent": step(NTXentLoss(TEMPERATURE)),
        "orl": step(ORLLoss(TEMPERATURE)),
        "lightly": step(lightly_loss) if lightly_loss is not None else None,
        "dense_ce": step(dense_cross_entropy),
        "floor": floor,
    }
    return {name: fn for name, fn in candidates.items() if fn is not None}


def agreement(z: torch.Tensor, lightly_loss) -> None:
    """Our NT-Xent, lightly's and the dense cross_entropy compute one function (SimCLR's: 2N
    anchors, every other embedding a candidate, mean over anchors): their values on `z` agree
    to float32 rounding, or the timings would compare different work. Raises if not."""
    from orbitcl.losses import NTXentLoss

    n = len(z) // 2
    values = {}
    losses = {"ntxent": NTXentLoss(TEMPERATURE), "dense_ce": dense_cross_entropy}
    losses |= {"lightly": lightly_loss} if lightly_loss is not None else {}
    with torch.no_grad():
        for name, loss_fn in losses.items():
            try:
                values[name] = float(loss_fn(z[:n], z[n:]))
            except torch.cuda.OutOfMemoryError:
                free_memory()
    ours = values.pop("ntxent")
    gaps = {name: abs(value - ours) / abs(ours) for name, value in values.items()}
    print(
        f"  values: ntxent {ours:.6f}; relative gaps "
        + ", ".join(f"{k} {v:.1e}" for k, v in gaps.items())
    )
    if any(gap > 1e-4 for gap in gaps.values()):
        raise RuntimeError(f"the baselines compute another loss than NT-Xent: {gaps}")


def measure(fn, device: str, repeats: int) -> tuple[float, float | None, float]:
    """(median seconds, peak MiB of torch.cuda.max_memory_allocated or None on the CPU, seconds
    of the first call: compiling included)."""
    cuda = torch.device(device).type == "cuda"
    start = time.perf_counter()
    fn()
    synchronize(device)
    first = time.perf_counter() - start
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return statistics.median(times), peak, first


def part_losses(scale: Scale, budget: Budget) -> None:
    try:
        from lightly.loss import NTXentLoss as LightlyNTXentLoss

        lightly_loss = LightlyNTXentLoss(TEMPERATURE)
    except ImportError as err:  # reported, the other columns measured all the same
        print(f"lightly not importable ({err}): its column is left out")
        lightly_loss = None
    print(
        f"forward + backward, d = {scale.dim}, {scale.device}; median of {scale.repeats} after a "
        "first call; peak = torch.cuda.max_memory_allocated over the timed calls (inputs "
        "included); floor = three IEEE fp32 (2N x d) @ (d x 2N) products"
    )
    held = True
    for dtype in scale.dtypes:
        for size in scale.loss_sizes:
            if budget.left() < 15:
                print(f"2N = {size}, {dtype}: skipped, the part's time cap is near")
                continue
            g = torch.Generator().manual_seed(0)
            z = torch.randn(size, scale.dim, generator=g).to(scale.device, dtype)
            if dtype == torch.float32:
                agreement(z, lightly_loss)
            results = {}
            for name, fn in loss_candidates(z, lightly_loss, scale.floor_rows).items():
                try:
                    results[name] = measure(fn, scale.device, scale.repeats)
                except torch.cuda.OutOfMemoryError:
                    results[name] = "OOM"
                free_memory()
            del z
            free_memory()
            held &= report_losses(size, dtype, results, scale)
    if not held:
        raise DoesNotHold("a loss-kernel target")


def report_losses(size: int, dtype: torch.dtype, results: dict, scale: Scale) -> bool:
    """Prints one size's line per candidate and, at the target's size in fp32, the verdicts."""
    floor = results["floor"][0] if results["floor"] != "OOM" else None
    print(f"2N = {size}, {str(dtype).removeprefix('torch.')} inputs:")
    for name, result in results.items():
        if result == "OOM":
            print(f"  {name:9s} OOM")
            continue
        seconds, peak, first = result
        ratio = f"  {seconds / floor:6.2f}x floor" if floor and name != "floor" else ""
        memory = f"  peak {peak:9.1f} MiB" if peak is not None else ""
        print(f"  {name:9s} {seconds * 1e3:9.2f} ms{ratio}{memory}  (first call {first:.2f} s)")
    target_size = max(scale.loss_sizes) if not scale.judged else TARGET_SIZE
    if size != target_size or dtype != torch.float32:
        return True
    held = True
    for name, target in FLOOR_TARGETS.items():
        if results.get(name, "OOM") == "OOM" or floor is None:
            print(f"{name} / 3-GEMM floor at 2N = {size}: DOES NOT HOLD (OOM)")
            held &= not scale.judged
            continue
        held &= verdict(
            f"{name} / 3-GEMM floor at 2N = {size}", results[name][0] / floor, target, scale
        )
    if results["ntxent"] != "OOM" and results["ntxent"][1] is not None:
        peak = results["ntxent"][1]
        held &= verdict(f"ntxent peak at 2N = {size}", peak, MEMORY_TARGET_MIB, scale, " MiB")
    return held


# --- (c) training steps ------------------------------------------------------------------------


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from orbitcl import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", list(overrides))


def part_steps(scale: Scale, budget: Budget) -> None:
    import logging
    import warnings

    from bench_step import interleaved_step_times
    from hydra.utils import instantiate
    from timing import median_ratio
    from torch.utils.data import default_collate

    from orbitcl.data import MultiViewDataset

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("orbitcl.data.sources").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    held = True
    for dataset, batch_size in scale.step_batch.items():
        if budget.left() < 10:
            print(f"{dataset}: skipped, the part's time cap is near")
            continue
        cfg = compose(f"dataset={dataset}", "dataset.pipeline=batched", "dataset.num_workers=0")
        datamodule = instantiate(cfg.dataset, batch_size=batch_size)
        datamodule.prepare_data()
        datamodule.setup("fit")
        n = scale.augment_batch
        images, labels = datamodule.train_dataloader().dataset[torch.arange(n)]
        items = MultiViewDataset(images, labels, datamodule.train_transform, datamodule.n_views)
        on_device = images.to(scale.device)
        generator = torch.Generator().manual_seed(0)

        def per_sample(items=items, n=n):  # what one DataLoader worker does for a batch
            return default_collate([items[i] for i in range(n)])

        def batched(datamodule=datamodule, on_device=on_device, generator=generator):
            return datamodule.batch_views(on_device, generator)

        speedup, per_sample_s, batched_s = median_ratio(per_sample, batched, scale.repeats)
        encoder = cfg.model.encoder._target_.rsplit(".", 1)[1]
        print(
            f"{dataset} ({encoder}): augmentation of {n} images x {datamodule.n_views} views: "
            f"batched on {scale.device} {n / batched_s:.0f} images/s, per-sample (one worker) "
            f"{n / per_sample_s:.0f} images/s"
        )
        if dataset == "cifar10":
            held &= verdict(
                f"{dataset}: batched / per-sample", speedup, AUGMENT_TARGET, scale, at_least=True
            )
        else:
            print(f"{dataset}: batched / per-sample: {speedup:.1f}x (no target)")
        batch = datamodule.batch_views(images[:batch_size], generator), labels[:batch_size]
        lightning, plain = interleaved_step_times(cfg, batch, scale.step_warmup, scale.steps)
        ratio = statistics.median([a / b for a, b in zip(lightning, plain, strict=True)])
        print(
            f"{dataset}: step of {batch_size} images x {datamodule.n_views} views, fp32: plain "
            f"loop {statistics.median(plain) * 1e3:.2f} ms, Lightning "
            f"{statistics.median(lightning) * 1e3:.2f} ms (median of {len(plain)})"
        )
        held &= verdict(f"{dataset}: Lightning step / plain loop step", ratio, STEP_TARGET, scale)
        free_memory()
    if not held:
        raise DoesNotHold("a training-step target")


# --- (d) time to kNN 0.97 ----------------------------------------------------------------------


def part_knn(scale: Scale, budget: Budget) -> None:
    from time_to_knn import DEFAULTS, stop_override

    from orbitcl.training.fit import train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        overrides = [
            "+experiment=orl_mnist_fast",
            *DEFAULTS,
            *scale.knn_overrides,
            stop_override(scale.knn_target),
            f"trainer.default_root_dir={run_dir}",
            f"callbacks.checkpoint.dirpath={run_dir / 'checkpoints'}",
            f"logger.save_dir={run_dir}",
        ]
        print(" ".join(overrides[:-3]))
        train(compose(*overrides), run_dir)
        wall = time.perf_counter() - start
        rows = []
        for metrics in run_dir.rglob("metrics.csv"):
            with open(metrics) as f:
                rows += [r for r in csv.DictReader(f) if r.get("val/knn_acc")]
    history = ", ".join(f"epoch {r['epoch']}: {float(r['val/knn_acc']):.4f}" for r in rows)
    print(f"kNN accuracy by validation: {history or 'none logged'}")
    reached = [r for r in rows if float(r["val/knn_acc"]) >= scale.knn_target]
    if reached:
        print(f"time to kNN {scale.knn_target}: {wall:.1f} s (epoch {reached[0]['epoch']})")
    else:
        print(f"kNN {scale.knn_target} NOT reached (DOES NOT HOLD); the run took {wall:.1f} s")
        if scale.judged:
            raise DoesNotHold("time to kNN")


# --- (e) NCCL ----------------------------------------------------------------------------------


def _rank(rank: int, world: int, backend: str, store: str, n: int) -> None:
    """One rank of part (e): its results to `store`.rank<r>.pt."""
    import torch.distributed as dist
    from helpers import gpu_checks

    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        gpu_checks.distributed_matches_one_process(rank, world, device, n=n)  # warm-up
        torch.save(
            gpu_checks.distributed_matches_one_process(rank, world, device, n=n),
            f"{store}.rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def part_nccl(scale: Scale, budget: Budget) -> None:
    if scale.device == "cuda":
        world, backend, n = torch.cuda.device_count(), "nccl", 4096
        if world < 2:
            print(f"{world} GPU: NCCL exactness needs two or more, skipped")
            return
    else:  # the smoke: one gloo process, in this process
        world, backend, n = 1, "gloo", scale.body_sizes["dist"]
    with tempfile.TemporaryDirectory() as tmp:
        store = f"{tmp}/store"
        if world == 1:
            _rank(0, 1, backend, store, n)
        else:
            import torch.multiprocessing as mp

            mp.spawn(_rank, args=(world, backend, store, n), nprocs=world, join=True)
        results = [torch.load(f"{store}.rank{r}.pt") for r in range(world)]
    for name in results[0]:
        error = max(r[name][0] for r in results)
        seconds = max(r[name][1] for r in results)
        print(
            f"{name}: {world} {backend} ranks x {n} images gathered = one process on "
            f"{world * n} (largest gradient error {error:.1e}); forward + backward "
            f"{seconds * 1e3:.1f} ms"
        )


RUNNERS = {"a": part_tests, "b": part_losses, "c": part_steps, "d": part_knn, "e": part_nccl}


# --- the check ---------------------------------------------------------------------------------


def run_part(key: str, scale: Scale, deadline: float | None = None) -> str:
    """One part in this process: its status ("ok", "DOES NOT HOLD", "FAILED"). `deadline`
    (seconds since the epoch): when the parent kills it, so that the part's own budget counts
    this process's start-up too."""
    seconds = scale.caps[key] if deadline is None else deadline - time.time()
    try:
        RUNNERS[key](scale, Budget(seconds))
        return "ok"
    except DoesNotHold as err:
        print(f"DOES NOT HOLD: {err}")
        return "DOES NOT HOLD"
    except Exception:  # printed; the check goes on with the next part
        traceback.print_exc(file=sys.stdout)
        return "FAILED"
    finally:
        free_memory()


STATUS_OF_CODE = {0: "ok", 1: "DOES NOT HOLD", 124: "TIMED OUT"}


def header(scale: Scale) -> list[str]:
    cuda = torch.cuda.is_available()
    card = torch.cuda.get_device_name(0) if cuda else "none (CPU)"
    count = torch.cuda.device_count() if cuda else 0
    commit, now = provenance()
    return [
        f"- date: {now}",
        f"- card: {card} x {count}" + (" (CPU smoke: no GPU figure)" if not scale.judged else ""),
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"Python {platform.python_version()}",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU cores",
        f"- commit: {commit or 'unknown'}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, CPU, in-process")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--parts", default="".join(PARTS))
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="each part in a capped child process (the default "
        "without --cpu-smoke): runs the full check's orchestration on the CPU",
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)  # one part, in a capped child process
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # the child's kill time
    args = parser.parse_args(argv)
    scale = SMOKE if args.cpu_smoke else FULL
    if args.cpu_smoke:  # one thread: on a shared CPU, tiny ops on several threads mostly wait
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(args, scale)
        finally:
            torch.set_num_threads(threads)
    return check(args, scale)


def check(args: argparse.Namespace, scale: Scale) -> int:
    """The check's parts in turn, or the one part `args.part` (the capped child's)."""
    if args.part:
        return {"ok": 0, "DOES NOT HOLD": 1}.get(run_part(args.part, scale, args.deadline), 2)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; --cpu-smoke runs the check on the CPU")
        return 2
    out = args.out or ROOT / "benchmarks" / "results" / (
        "gpu-smoke.md" if args.cpu_smoke else "gpu.md"
    )
    page = ["## GPU check" + (" (CPU smoke)" if args.cpu_smoke else ""), "", *header(scale), ""]
    print("\n".join(page), flush=True)
    statuses = {}
    start = time.perf_counter()
    for key in args.parts:
        title = f"({key}) {PARTS[key]}, cap {scale.caps[key]} s"
        print(f"== {title}", flush=True)
        part_start, part_cpu = time.perf_counter(), time.process_time()
        if args.cpu_smoke and not args.isolate:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(Tee(sys.stdout, buffer)):
                statuses[key] = run_part(key, scale)
            output = buffer.getvalue()
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "--part", key]
            command += ["--cpu-smoke"] if args.cpu_smoke else []
            command += ["--deadline", f"{time.time() + scale.caps[key]:.1f}"]
            code, output = run_capped(command, scale.caps[key])
            statuses[key] = STATUS_OF_CODE.get(code, "FAILED")
        seconds = time.perf_counter() - part_start
        in_process = args.cpu_smoke and not args.isolate
        cpu = f", CPU {time.process_time() - part_cpu:.1f} s" if in_process else ""
        print(f"-- ({key}) {statuses[key]} in {seconds:.1f} s{cpu}", flush=True)
        page += [
            f"### ({key}) {PARTS[key]}",
            "",
            f"{statuses[key]}, {seconds:.0f} s (cap {scale.caps[key]} s):",
            "",
        ]
        page += ["```", output.rstrip(), "```", ""]
    total = time.perf_counter() - start
    summary = ", ".join(f"({k}) {s}" for k, s in statuses.items())
    page += [f"Total {total:.0f} s: {summary}", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(page))
    print(f"gpu-check: {summary}; {total:.0f} s; written: {out}")
    return 0 if all(s == "ok" for s in statuses.values()) else 1


class Tee(io.TextIOBase):
    """Writes to several streams: the terminal and the page's buffer."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side timing for the benchmarks: ratios against a baseline measured in the same run.

These machines are noisy, so candidates and baselines are timed interleaved (A B A B ...) and
compared by their medians; absolute times are printed for context only.
"""

import statistics
import time
from collections.abc import Callable

import torch


def median_times(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2):
    """Median wall time in seconds of each callable, timed in interleaved rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def median_ratio(
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    repeats: int = 7,
    warmup: int = 1,
) -> tuple[float, float, float]:
    """Median over rounds of candidate time / baseline time, each round timing both back to
    back (in alternating order), so load that drifts between rounds cancels in each ratio.
    Returns (ratio, median candidate seconds, median baseline seconds)."""
    pair = {"candidate": candidate, "baseline": baseline}
    for _ in range(warmup):
        for fn in pair.values():
            fn()
    times = {name: [] for name in pair}
    for round_ in range(repeats):
        for name in list(pair)[:: 1 if round_ % 2 == 0 else -1]:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            pair[name]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    ratios = [c / b for c, b in zip(times["candidate"], times["baseline"], strict=True)]
    return (
        statistics.median(ratios),
        statistics.median(times["candidate"]),
        statistics.median(times["baseline"]),
    )


def report(
    name: str, ratio: float, target: float, detail: str = "", at_least: bool = False
) -> bool:
    """Prints `name: ratio (target <= target) holds|DOES NOT HOLD`; returns whether it holds.
    With `at_least` (a speedup), the target is a minimum: `(target >= target)`."""
    holds = ratio >= target if at_least else ratio <= target
    verdict = "holds" if holds else "DOES NOT HOLD"
    print(
        f"{name}: {ratio:.3f}x (target {'>=' if at_least else '<='} {target}x) {verdict}"
        + (f"  [{detail}]" if detail else "")
    )
    return holds


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def mnist_training_parts():
    """The default MNIST run's parts, built from its config as `orbitcl.train` builds them:
    (cfg, datamodule set up for fit, encoder, projector, loss, AdamW over both)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from orbitcl import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["dataset=mnist", "dataset.num_workers=0"])
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    encoder = instantiate(cfg.model.encoder)
    projector = instantiate(cfg.model.projector, in_dim=encoder.out_dim)
    loss_fn = instantiate(cfg.loss)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *projector.parameters()], lr=1e-3)
    return cfg, datamodule, encoder, projector, loss_fn, optimizer

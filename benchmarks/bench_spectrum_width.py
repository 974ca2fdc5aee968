"""The spectrum metrics' cost on wide encoders: RankMe, alpha-ReQ and LiDAR as the spectrum
callback computes them at each validation (``metrics.spectrum.view_metrics``), against the
implementation before (kept below as the baseline), measured in the same run.

The inputs are the callback's at its defaults (``conf/callbacks/default.yaml``: 500 fixed test
images x 4 views, so M = 2,000 views and A = 500 anchors), random orbits of width d = 128 (a
projector), 512 (ResNet-18's features) and 2048 (ResNet-50's), float64 on the CPU:

- before: ``rankme``, ``alpha_req`` and ``normalised_log_spectrum`` each took an SVD of the
  (M, d) views, and LiDAR whitened by Sigma_w^-1/2 from a full eigh, then took the eigenvalues
  of the (d, d) LDA matrix;
- now: one SVD for the three, and LiDAR by a Cholesky factor of Sigma_w, a triangular solve and
  the eigenvalues of the smaller of the (A, A) and (d, d) Gram matrices.

Each round times every old and new part, in alternating order; the ratios are medians over
rounds of the ratio within a round, the figures to compare on this shared machine.

Targets: the new one no slower at any d (ratio <= 1.1, the noise here); at d = 2048, LiDAR
<= 0.25x and the whole per-space work <= 0.35x the old, and LiDAR under 2 s (2 idle CPU cores),
small beside the callback's own forward pass of 2,500 images through ResNet-50 (tens of seconds
on such a CPU: bench_backbones.py measures 23.5 images/s forward and backward). Exits with
status 1 when one does not hold. About 40 s on 2 idle cores; longer under load.

    .venv/bin/python benchmarks/bench_spectrum_width.py
"""

import os
import statistics
import time

import torch

from orbitcl.metrics import spectrum

ANCHORS, VIEWS = 500, 4  # the callback's defaults: n_anchors, n_views
WIDTHS = {128: 21, 512: 3, 2048: 2}  # d: rounds (more where a round takes milliseconds)
NOT_SLOWER = 1.1
TARGETS_2048 = {"lidar": 0.25, "per space": 0.35}
LIDAR_SECONDS_2048 = 2.0
OLD = ("rankme", "alpha", "log spectrum", "lidar")  # what the callback computed per space before


def lidar_before(views, delta=spectrum.LIDAR_DELTA, eps=spectrum.LIDAR_EPS) -> float:
    """orbitcl's LiDAR before the Cholesky whitening (commit e42489c), verbatim."""
    e = views.detach().double().cpu()
    a, k, d = e.shape
    means = e.mean(1)
    between = means - means.mean(0)
    sigma_b = between.T @ between / (a - 1)
    within = (e - means[:, None]).reshape(a * k, d)
    sigma_w = within.T @ within / (a * (k - 1)) + delta * torch.eye(d, dtype=torch.float64)
    w_values, w_vectors = torch.linalg.eigh(sigma_w)
    inv_sqrt = (w_vectors * w_values.rsqrt()) @ w_vectors.T
    lda = inv_sqrt @ sigma_b @ inv_sqrt
    return spectrum.spectral_entropy_rank(torch.linalg.eigvalsh((lda + lda.T) / 2), eps)


def orbits(d: int, seed: int = 0) -> torch.Tensor:
    """(A, K, d): anchors spread along directions of decaying scale k^-1/2, views around them."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.arange(1, d + 1, dtype=torch.float64).rsqrt()
    anchors = torch.randn(ANCHORS, 1, d, generator=g, dtype=torch.float64)
    noise = torch.randn(ANCHORS, VIEWS, d, generator=g, dtype=torch.float64)
    return (anchors + 0.5 * noise) * scale


def measure(d: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each old metric and of the new parts; checks that they agree."""
    views = orbits(d)
    flat = views.flatten(0, 1)  # (M, d)
    parts = {
        "old rankme": lambda: spectrum.rankme(flat),
        "old alpha": lambda: spectrum.alpha_req(flat),
        "old log spectrum": lambda: spectrum.normalised_log_spectrum(flat),
        "old lidar": lambda: lidar_before(views),
        # view_metrics is these two and arithmetic on the min(M, d) singular values (< 1 ms)
        "new svd": lambda: spectrum.singular_values(flat),
        "new lidar": lambda: spectrum.lidar(views),
    }
    times = {name: [] for name in parts}
    results = {}
    for round_ in range(rounds):
        for name in list(parts)[:: 1 if round_ % 2 == 0 else -1]:
            start = time.perf_counter()
            results[name] = parts[name]()
            times[name].append(time.perf_counter() - start)
    new, _ = spectrum.view_metrics(views)
    for name in ("rankme", "alpha", "lidar"):  # the same numbers, to float64 rounding
        old = results[f"old {name}"]
        if abs(new[name] - old) > 1e-9 * abs(old):
            raise SystemExit(f"d={d}: {name} new {new[name]} != old {old}: DOES NOT HOLD")
    times["old per space"] = [sum(t) for t in zip(*(times[f"old {n}"] for n in OLD), strict=True)]
    times["new per space"] = [
        a + b for a, b in zip(times["new svd"], times["new lidar"], strict=True)
    ]
    return times


def main() -> None:
    load = os.getloadavg()[0]
    print(
        f"A = {ANCHORS} anchors x K = {VIEWS} views (M = {ANCHORS * VIEWS}), float64, "
        f"{torch.get_num_threads()} threads, load average {load:.2f} at the start"
    )
    holds = True
    for d, rounds in WIDTHS.items():
        times = measure(d, rounds)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(
            f"d = {d} (median of {rounds}): old rankme {med['old rankme']:.3f} s, alpha "
            f"{med['old alpha']:.3f} s, log spectrum {med['old log spectrum']:.3f} s (an SVD "
            f"each), lidar {med['old lidar']:.3f} s; new rankme + alpha + log spectrum (one "
            f"SVD) {med['new svd']:.3f} s, lidar {med['new lidar']:.3f} s"
        )
        for name in ("lidar", "per space"):
            ratio = statistics.median(
                n / o for n, o in zip(times[f"new {name}"], times[f"old {name}"], strict=True)
            )
            target = TARGETS_2048[name] if d == 2048 else NOT_SLOWER
            ok = ratio <= target
            holds &= ok
            print(
                f"  {name}, new / old: {ratio:.3f}x ({med[f'new {name}']:.3f} s / "
                f"{med[f'old {name}']:.3f} s, target <= {target}x) "
                + ("holds" if ok else "DOES NOT HOLD")
            )
        if d == 2048:
            ok = med["new lidar"] < LIDAR_SECONDS_2048
            holds &= ok
            print(
                f"  new lidar: {med['new lidar']:.3f} s (target < {LIDAR_SECONDS_2048} s on "
                "2 idle cores) " + ("holds" if ok else "DOES NOT HOLD")
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if not holds:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""The GPU check (benchmarks/gpu_check.py) at tiny sizes on the CPU (`--cpu-smoke`), in this
process: every part's code path runs, so the check cannot rot where no GPU is."""

import sys
import time

import pytest
import torch
from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402 -- benchmarks/ is not a package


def test_cpu_smoke_runs_every_part_and_writes_the_page(tmp_path, monkeypatch, capsys):
    dense = gpu_check.dense_cross_entropy

    def out_of_memory_at_the_larger_size(z_a, z_b):
        if len(z_a) >= max(gpu_check.SMOKE.loss_sizes) // 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return dense(z_a, z_b)

    monkeypatch.setattr(gpu_check, "dense_cross_entropy", out_of_memory_at_the_larger_size)
    # The GPU machines have no W&B: every part must run where `import wandb` fails.
    monkeypatch.setitem(sys.modules, "wandb", None)
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--cpu-smoke", "--out", str(out)]) == 0, capsys.readouterr().out
    page = out.read_text()
    assert "card: none (CPU)" in page and f"torch {torch.__version__}" in page
    for key in gpu_check.PARTS:
        assert f"### ({key}) {gpu_check.PARTS[key]}\n\nok, " in page
    # (a) the gpu tests' bodies; (b) every candidate, OOM reported as OOM, the baselines agreeing
    assert "T vs float64 under TF32: pinned" in page and "blocked vs float64" in page
    assert page.count("  dense_ce  OOM") == len(gpu_check.SMOKE.dtypes)
    for name in ("ntxent", "orl", "lightly", "floor"):
        assert page.count(f"  {name} ") >= 2 * len(gpu_check.SMOKE.loss_sizes)
    assert "ntxent / 3-GEMM floor at 2N = 32" in page and "relative gaps dense_ce" in page
    # (c) both datasets' augmentation and step ratios; (d) the run reached its target; (e) ranks
    assert page.count("Lightning step / plain loop step") == 2 and "cifar10: batched" in page
    assert "time to kNN 0.0: " in page
    assert "orl: 1 gloo ranks x 4 images gathered = one process on 4" in page
    assert "Total " in page and "DOES NOT HOLD" not in page


def test_a_part_past_its_cap_is_killed_and_its_status_kept():
    start = time.perf_counter()
    code, output = gpu_check.run_capped([sys.executable, "-c", "import time; time.sleep(60)"], 1)
    assert code == 124 and "TIMED OUT: killed after its cap of 1 s" in output
    assert time.perf_counter() - start < 20
    code, output = gpu_check.run_capped(
        [sys.executable, "-c", "print('missed'); raise SystemExit(1)"], 30
    )
    assert (code, output) == (1, "missed\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the full check runs where CUDA is")
def test_the_full_check_refuses_to_run_without_cuda(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "gpu.md")]) == 2
    assert "no CUDA device here" in capsys.readouterr().out
    assert not (tmp_path / "gpu.md").exists()

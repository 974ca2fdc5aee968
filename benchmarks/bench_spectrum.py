"""The spectrum diagnostics' cost (issue #26: within 3% of an MNIST epoch at the defaults).

The callback itself (``callbacks.spectrum`` at its defaults: 500 fixed test images x 4 views,
both spaces, neural collapse, the class tension and both figures) run as in training, against a
training epoch of the default MNIST run (conv_small, NT-Xent, batch 256 x 2 views, AdamW) in
this process, measured as ``bench_similarity.py`` measures it:

- the first validation, which also draws the orbits and the class-mean image cosines (once per
  run);
- a later validation (the median of 3), the per-epoch cost;
- an epoch: 234 model steps on ready views, the median step (the data pipeline's time left out,
  so the ratios are upper bounds).

Target: a later validation < 3% of an epoch; exits with status 1 when it does not hold.

    .venv/bin/python benchmarks/bench_spectrum.py
"""

import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from hydra.utils import instantiate
from timing import mnist_training_parts, seconds

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
TARGET = 0.03
STEPS_PER_EPOCH = 234  # 60,000 / 256


class Module(SimpleNamespace):
    def log(self, name, value, **kwargs):
        self.logged[name] = value


def main() -> None:
    cfg, dm, encoder, projector, loss_fn, optimizer = mnist_training_parts()
    callback = instantiate(cfg.callbacks.spectrum)
    module = Module(encoder=encoder, projector=projector, logged={})
    with tempfile.TemporaryDirectory() as out:
        trainer = SimpleNamespace(
            sanity_checking=False,
            is_global_zero=True,
            global_step=0,
            default_root_dir=out,
            loggers=[],
            datamodule=dm,
        )

        def validate():
            trainer.global_step += 1
            callback.on_validation_epoch_end(trainer, module)

        t_first = seconds(validate)
        t_later = statistics.median(seconds(validate) for _ in range(3))
    batch = callback.orbits(trainer).views[:256, :2].transpose(0, 1).flatten(0, 1)  # (2B, ...)
    steps = []
    for _ in range(8):
        start = time.perf_counter()
        loss = loss_fn(*projector(encoder(batch)).chunk(2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - start)
    epoch = STEPS_PER_EPOCH * statistics.median(steps[1:])
    print(f"MNIST epoch: {STEPS_PER_EPOCH} model steps on ready views = {epoch:.1f} s")
    print(f"logged: {len(module.logged)} scalars; threads: {torch.get_num_threads()}")
    print(f"first validation (draws the orbits): {t_first:.2f} s ({t_first / epoch:.2%})")
    share = t_later / epoch
    verdict = "holds" if share < TARGET else "DOES NOT HOLD"
    print(
        f"per validation: {t_later:.2f} s = {share:.2%} of an epoch "
        f"(target < {TARGET:.0%}) {verdict}"
    )
    if share >= TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

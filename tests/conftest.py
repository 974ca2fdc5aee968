"""Test-wide environment: the offline dataset copies, W&B never reaching the network, and the
cores shared out between the xdist workers."""

import os

# The cores, shared out between the xdist workers (and the subprocesses they start, through
# OMP_NUM_THREADS), before torch is imported. By default every worker takes one thread per core:
# on 2 cores, 2 workers then run 4 threads, and small parallel ops wait on each other (the
# linear probe's L-BFGS, thousands of tiny dot products, ran 13x slower that way).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers.paths import CONF_DIR, SHARED_DATA  # noqa: E402

if _WORKERS > 1:
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Set at import, before any config is composed, so ${oc.env:ORBITCL_DATA_DIR,...} sees it.
os.environ.setdefault("ORBITCL_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def train_config():
    """Composes conf/train.yaml with overrides, as the command line would; `hydra=True` keeps
    the `hydra` node (launcher, sweeper)."""

    def _compose(*overrides: str, hydra: bool = False):
        # Imported here: the GPU check runs the `gpu` tests where Hydra may be absent.
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=hydra)

    return _compose


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped without CUDA (`make gpu-check` runs them on a GPU)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""Test-wide environment: the offline dataset copies, and W&B never reaching the network."""

import os

import pytest
import torch
from helpers.paths import CONF_DIR, SHARED_DATA

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

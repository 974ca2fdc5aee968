"""Test-wide environment: the offline dataset copies, and W&B never reaching the network."""

import os

import pytest
from helpers.paths import CONF_DIR, SHARED_DATA
from hydra import compose, initialize_config_dir

# Set at import, before any config is composed, so ${oc.env:ORBITCL_DATA_DIR,...} sees it.
os.environ.setdefault("ORBITCL_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def train_config():
    """Composes conf/train.yaml with overrides, as the command line would; `hydra=True` keeps
    the `hydra` node (launcher, sweeper)."""

    def _compose(*overrides: str, hydra: bool = False):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=hydra)

    return _compose

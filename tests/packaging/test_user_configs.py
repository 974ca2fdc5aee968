"""Your own configs beside ours: a user's folder of presets, datasets and models composes with
orbitcl's groups (`--config-dir`, or `hydra.searchpath`), and their own `_target_` classes (a
module on PYTHONPATH) train; `evaluate` builds those only when the user allows them."""

import os
import textwrap

import pytest
import torch
from helpers.train_cli import run_module
from omegaconf import OmegaConf

LAB_MODULE = '''
"""A user's own projector, outside orbitcl."""
from torch import nn


class NormedLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int = 16):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, x):
        return nn.functional.normalize(self.linear(x), dim=1)
'''

USER_CONFIGS = {
    # a dataset of theirs: orbitcl's digits, other batch size
    "dataset/my_data.yaml": """
        defaults:
          - digits
          - _self_
        batch_size: 64
        num_workers: 0
    """,
    # a model of theirs: orbitcl's encoder, their projector
    "model/my_model.yaml": """
        encoder:
          _target_: orbitcl.models.ConvEncoder
          in_channels: 1
          widths: [8, 16]
        projector:
          _target_: my_lab.heads.NormedLinear
          out_dim: 16
    """,
    # a study preset: their dataset and model with orbitcl's ORL
    "experiment/my_study.yaml": """
        # @package _global_
        defaults:
          - override /dataset: my_data
          - override /model: my_model
          - override /loss: orl
        loss:
          temperature: 0.3
        trainer:
          max_steps: 2
    """,
}


@pytest.fixture
def user_folder(tmp_path):
    lab = tmp_path / "lab" / "my_lab"
    lab.mkdir(parents=True)
    (lab / "__init__.py").write_text("")
    (lab / "heads.py").write_text(LAB_MODULE)
    conf = tmp_path / "my_conf"
    for name, text in USER_CONFIGS.items():
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_text(textwrap.dedent(text))
    pythonpath = os.pathsep.join(
        filter(None, [str(tmp_path / "lab"), os.environ.get("PYTHONPATH")])
    )
    return conf, {"PYTHONPATH": pythonpath}


@pytest.mark.parametrize("how", ["config_dir", "searchpath"])
def test_user_configs_compose_with_orbitcls_and_their_classes_train(user_folder, tmp_path, how):
    conf, env = user_folder
    run_dir = tmp_path / "run"
    where = (
        ["--config-dir", str(conf)]
        if how == "config_dir"
        else [f"hydra.searchpath=[file://{conf}]"]
    )
    quick = ["callbacks.umap=null", "callbacks.orbit=null", "callbacks.similarity=null"]
    quick += ["callbacks.class_geometry=null", "callbacks.spectrum=null", "logger=csv"]
    result = run_module(
        *where, "+experiment=my_study", *quick, f"hydra.run.dir={run_dir}", cwd=tmp_path,
        env_extra=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.dataset._target_ == "orbitcl.data.DigitsDataModule"  # orbitcl's, via theirs
    assert cfg.dataset.batch_size == 64 and cfg.loss._target_ == "orbitcl.losses.ORLLoss"
    assert cfg.loss.temperature == 0.3
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 2
    assert state["state_dict"]["projector.linear.weight"].shape[0] == 16  # their class trained

    if how == "config_dir":  # the run holds their target: evaluate builds it only when allowed
        refused = run_module(str(run_dir), module="orbitcl.evaluate", env_extra=env)
        assert refused.returncode == 2
        assert "model.projector._target_=my_lab.heads.NormedLinear" in refused.stderr
        allowed = run_module(
            str(run_dir), "--allow-target", "my_lab", module="orbitcl.evaluate", env_extra=env
        )
        assert allowed.returncode == 0, allowed.stderr[-3000:]
        assert "kNN" in allowed.stdout

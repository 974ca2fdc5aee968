"""Run directories from elsewhere are untrusted: evaluate and analyze build only allowed targets
(orbitcl.experiments.trust), and a crafted run directory runs none of its code."""

import pytest
import torch
from helpers.train_cli import run_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from orbitcl.experiments.trust import UntrustedTargetError, check_targets


class WritesAFile:
    """A pickle that, when loaded, creates the file `marker` (code from the run directory)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_run(tmp_path):
    """A run directory whose config rebuilds the encoder with `torch.load` of its own pickle."""
    run = tmp_path / "shared-run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    marker = tmp_path / "pwned"
    payload = run / "encoder.pkl"
    torch.save(WritesAFile(str(marker)), payload)  # a pickle inside, as torch.load reads it
    torch.save({"state_dict": {}, "global_step": 1}, run / "checkpoints" / "last.ckpt")
    config = {
        "model": {
            "encoder": {"_target_": "torch.load", "f": str(payload), "weights_only": False},
            "projector": {"_target_": "orbitcl.models.MLPProjector", "in_dim": 4},
        },
        "dataset": {"_target_": "orbitcl.data.DigitsDataModule"},
        "eval": {"knn_k": 5},
    }
    OmegaConf.save(OmegaConf.create(config), run / ".hydra" / "config.yaml")
    return run, marker


def test_the_crafted_run_would_run_its_code_if_built(tmp_path):
    """The payload is real: building the encoder node as it stands creates the marker."""
    run, marker = crafted_run(tmp_path)
    instantiate(OmegaConf.load(run / ".hydra" / "config.yaml").model.encoder)
    assert marker.is_file()


@pytest.mark.parametrize("tool", ["evaluate", "analyze"])
def test_crafted_run_directory_is_refused_and_runs_nothing(tmp_path, tool):
    run, marker = crafted_run(tmp_path)
    args = [str(run)] if tool == "evaluate" else [str(run), "--out", str(tmp_path / "out")]
    result = run_module(*args, module=f"orbitcl.{tool}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "model.encoder._target_=torch.load" in result.stderr
    assert "is not allowed" in result.stderr and "--allow-target torch.load" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize(
    "target, reason",
    [
        ("torch.load", "outside the allow-list"),
        ("os.system", "outside the allow-list"),
        ("builtins.eval", "outside the allow-list"),
        ("torch.nn.functional.relu", "not a torch.nn module"),
        ("torch.nn.modules.module.Module.load_state_dict", "not a torch.nn module"),
        ("orbitcl.experiments.runs.load_run", "not a class of orbitcl"),
        ("torchvision.models.get_model", "not a torchvision model"),
        ("torchvision.models._api.load_state_dict_from_url", "private"),
        ("orbitcl.nothing.here", "names nothing importable"),
    ],
)
def test_targets_outside_the_allow_list_are_refused(target, reason):
    node = OmegaConf.create({"layers": [{"_target_": "torch.nn.ReLU"}, {"_target_": target}]})
    with pytest.raises(UntrustedTargetError, match=reason) as error:
        check_targets(node, "model.encoder", "RUN/.hydra/config.yaml")
    assert f"model.encoder.layers[1]._target_={target} in RUN/.hydra/config.yaml" in str(
        error.value
    )


@pytest.mark.parametrize(
    "target",
    [
        "orbitcl.models.ConvEncoder",
        "orbitcl.data.MNISTDataModule",
        "torch.nn.Linear",
        "torch.nn.modules.linear.Linear",
        "torchvision.transforms.v2.RandomResizedCrop",
        "torchvision.models.resnet18",
        "torchvision.models.ResNet",
    ],
)
def test_allowed_targets(target):
    check_targets(OmegaConf.create({"_target_": target}), "model.encoder", "config.yaml")


def test_a_user_allows_their_own_targets(monkeypatch):
    node = OmegaConf.create({"_target_": "my_lab.encoders.Tiny", "width": 3})
    with pytest.raises(UntrustedTargetError, match="--allow-target my_lab.encoders.Tiny"):
        check_targets(node, "model.encoder", "config.yaml")
    check_targets(node, "model.encoder", "config.yaml", extra=["my_lab"])  # a package prefix
    check_targets(node, "model.encoder", "config.yaml", extra=["my_lab.encoders.Tiny"])
    with pytest.raises(UntrustedTargetError):  # a prefix is a whole name, not a string prefix
        check_targets(node, "model.encoder", "config.yaml", extra=["my_la"])
    monkeypatch.setenv("ORBITCL_ALLOW_TARGETS", "other, my_lab.encoders")
    check_targets(node, "model.encoder", "config.yaml")

"""timm and torchvision encoders in-process: the CIFAR ResNet-18 unchanged, old checkpoints, bad
names and offline weights, the trust allow-list, and torch.compile of a ViT."""

import time

import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from torch import nn

from orbitcl.experiments.runs import load_run
from orbitcl.experiments.trust import UntrustedTargetError, check_targets
from orbitcl.models import MLPProjector, ResNet18CIFAR, TimmEncoder, TorchvisionEncoder
from orbitcl.training.config import ConfigError, build


class FrozenOldResNet18CIFAR(nn.Module):
    """orbitcl's ResNet18CIFAR before the torchvision encoders, verbatim: what old runs hold."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x):
        return self.net(x)


def test_resnet18_cifar_preset_is_the_old_architecture(train_config):
    new = build("model.encoder", train_config("dataset=cifar10").model.encoder)
    assert isinstance(new, TorchvisionEncoder) and new.out_dim == 512
    old = FrozenOldResNet18CIFAR()
    shapes = {k: v.shape for k, v in old.state_dict().items()}
    assert {k: v.shape for k, v in new.state_dict().items()} == shapes  # same keys, same order
    assert list(new.state_dict()) == list(shapes)
    count = sum(p.numel() for p in old.parameters())
    assert sum(p.numel() for p in new.parameters()) == count == 11_168_832
    new.load_state_dict(old.state_dict(), strict=True)
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(new.eval()(images), old.eval()(images))


@pytest.mark.parametrize("target", ["orbitcl.models.ResNet18CIFAR", "current"])
def test_a_checkpoint_written_before_the_change_loads(train_config, tmp_path, target):
    """An old run (its config naming ResNet18CIFAR, its weights from the old class) loads as it
    is; the same weights load under the new resnet18_cifar config."""
    from helpers.data_files import write_image_folder

    from orbitcl import evaluate

    write_image_folder(tmp_path / "folder" / "train", per_class=4, size=(32, 32))
    write_image_folder(tmp_path / "folder" / "test", per_class=2, size=(32, 32), seed=1)
    cfg = train_config("dataset=image_folder", f"dataset.root={tmp_path / 'folder'}")
    cfg.dataset.num_workers = 0
    cfg.dataset.image_size = 32
    if target != "current":
        cfg.model.encoder = OmegaConf.create({"_target_": target, "in_channels": 3})
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    torch.manual_seed(0)
    old = FrozenOldResNet18CIFAR().eval()
    projector = MLPProjector(512, 512, 128)
    state = {f"encoder.{k}": v for k, v in old.state_dict().items()}
    state |= {f"projector.{k}": v for k, v in projector.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 1}, run / "checkpoints" / "last.ckpt")
    loaded = load_run(run)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encoder(images), old(images))
    assert evaluate.main([str(run)]) == 0


def test_unknown_timm_name_fails_in_seconds_naming_the_closest(train_config):
    cfg = train_config("model=timm", "model.encoder.name=vit_tiniest", "dataset=cifar10")
    import timm  # noqa: F401 -- timm's own import (seconds on a loaded CPU) is not the check's

    start = time.perf_counter()
    with pytest.raises(ConfigError, match="model.encoder.name='vit_tiniest' is invalid") as err:
        build("model.encoder", cfg.model.encoder)
    assert time.perf_counter() - start < 5
    assert "vit_tiny_patch16_224" in str(err.value)


def test_unknown_torchvision_name_names_the_closest():
    with pytest.raises(ValueError, match="name='resnet51' is invalid.*resnet50"):
        TorchvisionEncoder("resnet51")


def test_pretrained_offline_stops_before_training_saying_what_and_where(
    train_config, tmp_path, monkeypatch
):
    from huggingface_hub import constants

    from orbitcl.training.fit import train

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg = train_config(
        "model=timm", "model.encoder.name=convnext_atto", "model.encoder.pretrained=true"
    )
    with pytest.raises(ConfigError, match="model.encoder.pretrained=True is invalid") as err:
        train(cfg, tmp_path / "run")
    message = str(err.value)
    assert "timm/convnext_atto" in message and constants.HF_HUB_CACHE in message
    assert not (tmp_path / "run").exists()  # nothing written


def test_torchvision_weights_offline_say_the_url_and_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ValueError, match="weights='DEFAULT' is invalid here") as err:
        TorchvisionEncoder("resnet18", weights="DEFAULT")
    assert "download.pytorch.org" in str(err.value) and str(tmp_path) in str(err.value)


def _node(target: str, **arguments) -> dict:
    return {"encoder": {"_target_": target, **arguments}}


@pytest.mark.parametrize(
    "target",
    ["timm.create_model", "torchvision.models.resnet50", "orbitcl.models.TimmEncoder"],
)
def test_trust_accepts_timm_create_model_and_torchvision_builders(target):
    check_targets(_node(target, name="resnet18"), "model", "config.yaml")


@pytest.mark.parametrize(
    "target,arguments,reason",
    [
        ("timm.models.load_checkpoint", {}, "is not timm.create_model"),
        ("timm.create_model", {"checkpoint_path": "x.pkl"}, "load the file"),
        ("orbitcl.models.TimmEncoder", {"model_args": {"checkpoint_path": "x"}}, "load the file"),
        ("torchvision.models.get_weight", {}, "is not a torchvision model"),
        ("torch.load", {}, "outside the allow-list"),
    ],
)
def test_trust_still_refuses_anything_else(target, arguments, reason):
    with pytest.raises(UntrustedTargetError, match=reason):
        check_targets(_node(target, **arguments), "model", "config.yaml")


def test_vit_forward_compiles_without_graph_breaks():
    torch.manual_seed(0)
    vit = TimmEncoder("vit_tiny_patch16_224", img_size=32, model_args={"patch_size": 4, "depth": 2})
    explanation = torch._dynamo.explain(vit.eval())(torch.randn(2, 3, 32, 32))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_vit_under_channels_last_and_bf16_autocast():
    torch.manual_seed(0)
    vit = TimmEncoder("vit_tiny_patch16_224", img_size=32, model_args={"patch_size": 4, "depth": 2})
    images = torch.randn(4, 3, 32, 32)
    reference = vit(images)
    vit.to(memory_format=torch.channels_last)
    torch.testing.assert_close(vit(images), reference, rtol=1e-4, atol=1e-4)
    # The pooled features leave the final LayerNorm, which autocast keeps in float32; the
    # attention's projections are where bf16 runs.
    seen = []
    vit.net.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = vit(images)
    assert seen == [torch.bfloat16]
    torch.testing.assert_close(features.float(), reference, rtol=0.1, atol=0.1)
    features.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in vit.parameters() if p.grad is not None)


def test_old_class_name_still_builds():
    assert isinstance(ResNet18CIFAR(in_channels=1), TorchvisionEncoder)

import json
from pathlib import Path

import pytest
import torch

from orbitcl.experiments.runs import TrainedRun
from orbitcl.export import export_encoder
from orbitcl.models import ConvEncoder, MLPProjector, ResNet18CIFAR


@pytest.mark.parametrize("size", [8, 28])
def test_conv_encoder_any_size_reports_its_width(size):
    encoder = ConvEncoder(in_channels=1, widths=(8, 16))
    out = encoder(torch.randn(3, 1, size, size))
    assert out.shape == (3, encoder.out_dim) == (3, 16)


def test_resnet18_cifar_stem_keeps_resolution():
    encoder = ResNet18CIFAR()
    assert encoder.net.conv1.kernel_size == (3, 3) and encoder.net.conv1.stride == (1, 1)
    assert isinstance(encoder.net.maxpool, torch.nn.Identity)
    assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, encoder.out_dim) == (2, 512)


def test_projector_shapes_and_layers():
    projector = MLPProjector(in_dim=16, hidden_dim=32, out_dim=8, num_layers=3)
    assert projector(torch.randn(4, 16)).shape == (4, 8)
    assert sum(isinstance(m, torch.nn.Linear) for m in projector.modules()) == 3


@pytest.mark.parametrize("field", ["out_dim", "hidden_dim", "num_layers"])
def test_projector_rejects_zero_width(field):
    kwargs = {"in_dim": 16, field: 0}
    with pytest.raises(ValueError, match=f"^{field}=0 is invalid"):
        MLPProjector(**kwargs)


@pytest.mark.parametrize("size", [8, 28])
def test_conv_encoder_pool_grid_flattens_a_grid_of_features(size):
    encoder = ConvEncoder(in_channels=1, widths=(4, 8), pool_size=3).eval()
    x = torch.randn(2, 1, size, size)
    assert encoder(x).shape == (2, encoder.out_dim) == (2, 8 * 3 * 3)
    # Each block of 9 features is one channel's 3x3 grid of regional averages.
    grid = encoder(x).view(2, 8, 9)
    assert grid.std(dim=2).mean() > 0  # the grid cells differ: layout is kept


def test_conv_encoder_rejects_bad_pool_size():
    with pytest.raises(ValueError, match="^pool_size=0 is invalid"):
        ConvEncoder(pool_size=0)


def test_exported_cifar_resnet_loads_into_torchvision_resnet18(train_config, tmp_path, monkeypatch):
    """`orbitcl.export` of a CIFAR ResNet-18 says how to load it into torchvision's resnet18 (built
    by torchvision's own call, its stem replaced as the recipe says); following what it says
    gives the same features."""
    torch.manual_seed(0)
    encoder = ResNet18CIFAR(in_channels=1).eval()
    cfg = train_config("dataset=cifar10", "model.encoder.in_channels=1")
    run = TrainedRun("run", tmp_path, Path("last.ckpt"), cfg, encoder, None, None, 0)
    description = json.loads(export_encoder(run, tmp_path / "encoder.pt").read_text())
    monkeypatch.chdir(tmp_path)  # the recipe loads encoder.pt from where it lies
    namespace = {}
    exec("\n".join(description["load"]), namespace)
    resnet = namespace["model"].eval()
    assert type(resnet).__module__ == "torchvision.models.resnet"
    images = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(resnet(images), encoder(images))

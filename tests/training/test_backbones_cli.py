"""The timm and torchvision backbones through the real command line: 3 training steps each of
`model=vit_tiny_cifar dataset=cifar10`, `model=resnet50 dataset=image_folder` and
`model=timm model.encoder.name=convnext_atto dataset=cifar10`; then `orbitcl.export`, whose
state dict loads with strict=True into the library call its JSON gives, `orbitcl.evaluate` and
`orbitcl.analyze`.

The three runs go through the command line's entry point one after the other in one process
(`helpers.train_cli.run_train_several`): most of a run's time is importing torch, Lightning and
timm, paid once.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers.data_files import write_image_folder
from helpers.train_cli import SMOKE, run_train_several
from omegaconf import OmegaConf

from orbitcl import analyze, evaluate, export
from orbitcl.experiments.runs import load_run

# The smoke run (3 steps, callbacks off, CSV logger) with tiny batches: kNN on 1 batch of 8 images.
CHEAP = [*SMOKE[1:], "dataset.batch_size=4", "dataset.eval_batch_size=8"]
CHEAP += ["callbacks.online_linear=null", "trainer.limit_val_batches=1"]
CHEAP += ["callbacks.checkpoint.save_top_k=0"]  # last.ckpt alone: ResNet-50's is 280 MB
RUNS = {
    "vit_tiny_cifar": ["model=vit_tiny_cifar", "dataset=cifar10"],
    "resnet50": ["model=resnet50", "dataset=image_folder"],  # its default 64 px
    "convnext_atto": ["model=timm", "model.encoder.name=convnext_atto", "dataset=cifar10"],
}
# What each preset builds: (library call, features width).
EXPECTED = {
    "vit_tiny_cifar": ("timm.create_model", 192),
    "resnet50": ("torchvision.models.resnet50", 2048),
    "convnext_atto": ("timm.create_model", 320),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """{name: run directory} of the three 3-step runs, and "folder": their image folder."""
    root = tmp_path_factory.mktemp("backbones")
    # Class folders with a test split: 2 classes x 4 training images at 72 x 64 px.
    write_image_folder(root / "folder" / "train", per_class=4, size=(72, 64))
    write_image_folder(root / "folder" / "test", per_class=2, size=(72, 64), seed=1)
    commands = []
    for name, overrides in RUNS.items():
        extra = [f"dataset.root={root / 'folder'}"] if name == "resnet50" else []
        commands.append([*overrides, *CHEAP, *extra, f"hydra.run.dir={root / name}"])
    results = run_train_several(*commands, cwd=root, env_extra={"OMP_NUM_THREADS": "1"})
    for name, (status, out, err) in zip(RUNS, results, strict=True):
        assert status == 0, f"{name}:\n{err[-3000:]}"
        assert "kNN accuracy" in out, name
    return {name: root / name for name in RUNS} | {"folder": root / "folder"}


@pytest.mark.parametrize("name", list(RUNS))
def test_trained_run_exports_a_state_dict_its_library_call_loads_strictly(
    runs, name, tmp_path, monkeypatch
):
    out = tmp_path / f"{name}.pt"
    assert export.main([str(runs[name]), "--out", str(out)]) == 0
    description = json.loads(out.with_suffix(".json").read_text())
    call, width = EXPECTED[name]
    assert description["rebuild"]["call"] == call and description["out_dim"] == width
    # The library call, with its arguments, and nothing of orbitcl.
    monkeypatch.chdir(tmp_path)  # the load lines read the state dict from where it lies
    namespace = {}
    exec("\n".join(description["load"]), namespace)  # ends with load_state_dict(strict=True)
    model = namespace["model"].eval()
    assert not type(model).__module__.startswith("orbitcl")
    assert f"{call}(" in description["load"][1]
    # It is the trained encoder: the same features as the run's own.
    trained = load_run(runs[name]).encoder
    size = 64 if name == "resnet50" else 32
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(images), trained(images))
        assert model(images).shape == (2, width)


def test_vit_run_kept_its_preset_and_weights_moved(runs):
    """The ViT preset trained as configured (32 px, 4x4 patches: 64 tokens and a class token),
    and the 3 steps changed its weights."""
    run = load_run(runs["vit_tiny_cifar"])
    vit = run.encoder.net
    assert vit.patch_embed.patch_size == (4, 4) and vit.pos_embed.shape == (1, 65, 192)
    step = torch.load(runs["vit_tiny_cifar"] / "checkpoints" / "last.ckpt", weights_only=True)
    assert step["global_step"] == 3


def test_evaluate_runs_on_the_resnet50_image_folder_run(runs, capsys):
    assert evaluate.main([str(runs["resnet50"])]) == 0
    assert "linear probe top-1" in capsys.readouterr().out


def _on_the_folder(run_dir: Path, dataset, copy: Path) -> Path:
    """A copy of a run with another dataset node: its encoder and weights as trained."""
    shutil.copytree(run_dir, copy)
    config = copy / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(config)
    cfg.dataset = dataset
    OmegaConf.save(cfg, config)
    return copy


def test_evaluate_and_analyze_the_vit_and_convnext_runs(runs, tmp_path, train_config):
    """The CIFAR-10 runs (ViT, ConvNeXt) evaluated and analyzed on the image folder at their
    32 px: 12 images, not CIFAR-10's 5,000 (seconds, not minutes on a CPU)."""
    folder = ["dataset=image_folder", f"dataset.root={runs['folder']}", "dataset.image_size=32"]
    dataset = train_config(*folder, "dataset.num_workers=0").dataset
    copies = [
        str(_on_the_folder(runs[name], dataset, tmp_path / name))
        for name in ("vit_tiny_cifar", "convnext_atto")
    ]
    out = tmp_path / "evaluate.json"
    assert evaluate.main([*copies, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert len(results) == 2 and all(0 <= r["probe_top1"] <= 1 for r in results)
    argv = [*copies, "--out", str(tmp_path / "analysis"), "--anchors", "4", "--views", "2"]
    assert analyze.main([*argv, "--umap-images", "4", "--umap-views", "2"]) == 0
    rows = json.loads((tmp_path / "analysis" / "table.json").read_text())
    assert [row["name"] for row in rows] == [
        "ntxent-tau0.5 (vit_tiny_cifar)",
        "ntxent-tau0.5 (convnext_atto)",
    ]
    assert all(1 <= row["rankme"] <= 8 and row["variance"] > 0 for row in rows)  # 4 x 2 views
    assert [row["step"] for row in rows] == [3, 3]

"""Installed like a library: a wheel built from this checkout, installed outside it, trains from
any directory with the configs it ships (console script and `python -m` alike)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers.paths import ROOT


def run(*args, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # No PYTHONPATH: nothing of the checkout may leak into the installed environment.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WANDB_MODE": "offline"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh environment holding the wheel; torch and the other dependencies come from this
    virtual environment's site-packages (added as a plain path, so its editable install of the
    checkout, a .pth file there, is not processed). Returns the environment's bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: building must leave no build/ or egg-info in the checkout
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", tmp / "dist", source, cwd=tmp,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("orbitcl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "orbitcl/conf/train.yaml" in names and "orbitcl/conf/trainer/default.yaml" in names

    env = tmp / "env"
    assert run(sys.executable, "-m", "venv", "--without-pip", env, cwd=tmp).returncode == 0
    python = env / "bin" / "python"
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp
    )
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index"]
    result = run(*pip, wheel, cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return env / "bin"


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    where = run(installed / "python", "-c", "import orbitcl; print(orbitcl.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    package = Path(where.stdout.strip())
    assert installed.parent in package.parents and ROOT not in package.parents


@pytest.mark.parametrize(
    "command",
    [
        ["orbitcl-train", "trainer.max_steps=2"],
        ["python", "-m", "orbitcl.train", "loss=orl", "dataset=mnist", "trainer.max_steps=2"],
    ],
    ids=["console_script", "python_m"],
)
def test_the_wheel_trains_from_another_directory(installed, tmp_path, command):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Seconds, not a minute: no UMAP, kNN on 2 batches, no DataLoader workers, CSV.
    quick = ["callbacks.umap=null", "trainer.limit_val_batches=2", "dataset.num_workers=0"]
    quick += ["logger=csv"]
    result = run(installed / command[0], *command[1:], *quick, "hydra.run.dir=run", cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kNN accuracy" in result.stdout
    assert (elsewhere / "run" / "checkpoints" / "last.ckpt").is_file()

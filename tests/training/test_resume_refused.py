"""A run directory whose last.ckpt cannot be resumed (truncated, another experiment's, not a
checkpoint at all) stops the run before training, naming the file and the newest checkpoint
beside it that would load; nothing in the run directory changes."""

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from helpers.in_process import run_dir_overrides
from helpers.paths import CONF_DIR
from hydra import compose, initialize_config_dir

from orbitcl.training.config import ConfigError
from orbitcl.training.fit import train

# Two epochs of two steps on digits, diagnostics off: last.ckpt and epoch001-step000004.ckpt.
TWO_EPOCHS = [
    "model=conv_small",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "dataset.batch_size=8",
    "dataset.num_workers=0",
    *(f"callbacks.{name}=null" for name in ("tension", "orbit", "class_geometry")),
    *(f"callbacks.{name}=null" for name in ("similarity", "umap")),
]
EARLIER = "epoch001-step000004.ckpt"


def config(run_dir: Path, *overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", [*TWO_EPOCHS, *run_dir_overrides(run_dir), *overrides])


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run_dir.mkdir()
    train(config(run_dir), run_dir)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == [EARLIER, "last.ckpt"]
    return run_dir


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def truncate(last: Path) -> None:
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])


def other_experiment(last: Path) -> None:
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["callbacks"]["ConfigSnapshot"]["config"]["loss"]["temperature"] = 0.2
    torch.save(checkpoint, last)


def another_program(last: Path) -> None:  # a Lightning checkpoint without orbitcl's config
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["callbacks"]["ConfigSnapshot"]
    torch.save(checkpoint, last)


@pytest.mark.parametrize(
    "spoil,problem",
    [
        (truncate, "cannot be read (RuntimeError: "),
        (other_experiment, "was written by a run with a different config:\n  loss.temperature: "),
        (another_program, "holds no orbitcl config: it was not written by an orbitcl run"),
        (lambda last: last.write_text("not a checkpoint\n"), "cannot be read (UnpicklingError"),
        (lambda last: torch.save({"w": torch.zeros(2)}, last), "not a Lightning checkpoint"),
    ],
)
def test_a_checkpoint_that_cannot_be_resumed_stops_the_run_naming_one_that_would(
    run_dir, spoil, problem
):
    last = run_dir / "checkpoints" / "last.ckpt"
    spoil(last)
    before = digest(run_dir)
    with pytest.raises(ConfigError) as error:
        train(config(run_dir), run_dir)
    message = str(error.value)
    assert message.startswith(f"{last} ") and problem in message, message
    assert f"{EARLIER} in {run_dir / 'checkpoints'} would load: copy it over last.ckpt" in message
    assert digest(run_dir) == before  # nothing overwritten, nothing added


def test_without_a_checkpoint_that_would_load_it_says_so(run_dir):
    truncate(run_dir / "checkpoints" / "last.ckpt")
    other_experiment(run_dir / "checkpoints" / EARLIER)
    before = digest(run_dir)
    with pytest.raises(ConfigError, match="no other checkpoint in .* would load"):
        train(config(run_dir), run_dir)
    assert digest(run_dir) == before


def test_the_checkpoint_named_resumes(run_dir):
    last = run_dir / "checkpoints" / "last.ckpt"
    truncate(last)
    shutil.copy(run_dir / "checkpoints" / EARLIER, last)  # what the message says to do
    metrics = train(config(run_dir, "trainer.max_epochs=3"), run_dir)
    # The third epoch ran from the named checkpoint's step 4. (The copied run directory is not
    # where its checkpoints were written, so Lightning names its new last checkpoint last-v1.)
    assert (run_dir / "checkpoints" / "epoch002-step000006.ckpt").is_file()
    assert "val/knn_acc" in metrics

"""A run directory whose last.ckpt cannot be resumed (truncated, another experiment's, not a
checkpoint at all, of another length) stops the run before training, naming the file and what
to do; nothing in the run directory changes. Keys added to the configs later, with the value
that does what older runs did, do not refuse older checkpoints."""

import hashlib
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch
from helpers.in_process import run_dir_overrides
from helpers.paths import CONF_DIR
from helpers.stopping import stop_after
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from orbitcl.losses import BYOLLoss, MoCoLoss, NTXentLoss
from orbitcl.training.config import ConfigError
from orbitcl.training.fit import train
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.resume import check_resumable, length_problem
from orbitcl.training.schedules import warmup_cosine

# A run of K = 6 optimiser steps (epochs of two steps on digits, diagnostics off), stopped after
# two epochs as if killed there (`stop_after`): last.ckpt and epoch001-step000004.ckpt. Its
# AdamW's warm-up and cosine schedule is a function of K.
TWO_EPOCHS = [
    "model=conv_small",
    "trainer.max_steps=6",
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
    train(config(run_dir, *stop_after(2)), run_dir)
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
    metrics = train(config(run_dir), run_dir)
    # The third epoch ran from the named checkpoint's step 4. (The copied run directory is not
    # where its checkpoints were written, so Lightning names its new last checkpoint last-v1.)
    assert (run_dir / "checkpoints" / "epoch002-step000006.ckpt").is_file()
    assert "val/knn_acc" in metrics


def stored_state(last: Path) -> tuple[dict, dict]:
    checkpoint = torch.load(last, weights_only=True)
    return checkpoint, checkpoint["callbacks"]["ConfigSnapshot"]


def test_a_checkpoint_stores_the_run_length(trained):
    _, state = stored_state(trained / "checkpoints" / "last.ckpt")
    assert state["stepping_batches"] == 6  # trainer.max_steps, not the 2 epochs it ran


def test_a_longer_run_is_refused_naming_both_lengths_and_the_key(run_dir):
    before = digest(run_dir)
    with pytest.raises(ConfigError) as error:
        train(config(run_dir, "trainer.max_steps=8"), run_dir)
    message = str(error.value)
    assert "was written by a run of K=6 optimiser steps, and this run would have K=8" in message
    assert "  trainer.max_steps: 6 in the checkpoint, 8 now" in message
    assert "the learning-rate schedule (optim.scheduler) is a function of K" in message
    assert "start a new run" in message
    assert digest(run_dir) == before  # refused before any checkpoint, metric or log was written


def test_a_checkpoint_without_its_length_resumes_and_says_it_cannot_check(run_dir, caplog):
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint, state = stored_state(last)
    del state["stepping_batches"]  # as checkpoints were written before it was stored
    torch.save(checkpoint, last)
    with caplog.at_level("WARNING", logger="orbitcl.training.resume"):
        train(config(run_dir), run_dir)
    lines = [r.getMessage() for r in caplog.records if "cannot be checked" in r.getMessage()]
    assert len(lines) == 1 and "K=6 now" in lines[0], lines
    assert (run_dir / "checkpoints" / "epoch002-step000006.ckpt").is_file()  # it trained on


def without(tree: dict, dotted: str) -> dict:
    """`tree` with the key `dotted` (`loss.momentum_schedule`) removed, as an older config."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node[key]
    del node[leaf]
    return tree


def moco_checkpoint(run_dir: Path, stored: dict) -> Path:
    """A copy of the run's last.ckpt whose stored config is `stored`."""
    checkpoint, state = stored_state(run_dir / "checkpoints" / "last.ckpt")
    state["config"] = stored
    path = run_dir / "checkpoints" / "moco.ckpt"
    torch.save(checkpoint, path)
    return path


def resolved(run_dir: Path, *overrides: str) -> dict:
    return OmegaConf.to_container(config(run_dir, "loss=moco", *overrides), resolve=True)


def test_a_key_added_later_counts_as_its_old_behaviour_in_an_older_checkpoint(run_dir):
    old_style = without(resolved(run_dir), "loss.momentum_schedule")  # before 8b7600c
    last = moco_checkpoint(run_dir, old_style)
    check_resumable(last, resolved(run_dir))  # momentum_schedule: constant, what it did: resumes

    with pytest.raises(ConfigError) as error:  # a schedule the older run did not follow
        check_resumable(last, resolved(run_dir, "loss.momentum_schedule=cosine"))
    assert "  loss.momentum_schedule: absent (so 'constant') in the checkpoint, 'cosine' now" in (
        str(error.value)
    )


def test_a_missing_key_not_added_later_still_refuses(run_dir):
    last = moco_checkpoint(run_dir, without(resolved(run_dir), "loss.queue_size"))
    with pytest.raises(ConfigError, match="  loss.queue_size: '<absent>' in the checkpoint, 4096"):
        check_resumable(last, resolved(run_dir))


@pytest.mark.parametrize(
    "loss,scheduler,schedules",
    [
        ("byol", True, ["learning-rate schedule", "cosine momentum"]),
        ("byol", False, ["cosine momentum"]),
        ("moco", True, ["learning-rate schedule"]),  # MoCo's constant momentum: not K's
        ("moco", False, []),
        ("ntxent", False, []),
    ],
)
def test_what_depends_on_the_run_length_is_named_and_only_that_refuses(loss, scheduler, schedules):
    losses = {"byol": BYOLLoss(), "moco": MoCoLoss(dim=4, queue_size=8), "ntxent": NTXentLoss()}
    module = ContrastiveModule(
        nn.Linear(4, 4),
        nn.Linear(4, 4),
        losses[loss],
        partial(torch.optim.SGD, lr=0.1),
        warmup_cosine if scheduler else None,
        predictor=nn.Linear(4, 4) if loss == "byol" else None,
    )
    named = module.schedules_over_run
    assert len(named) == len(schedules)
    assert all(s in n for s, n in zip(schedules, named, strict=True))
    resumed = {"config": {"trainer": {"max_steps": 6}}, "stepping_batches": 6}
    problem = length_problem(resumed, {"trainer": {"max_steps": 8}}, 8, named, "last.ckpt")
    assert (problem is None) == (not schedules)  # without a schedule of K, the length may change
    assert length_problem(resumed, resumed["config"], 6, named, "last.ckpt") is None

"""Every loss config trains through the real command line: a smoke run of each (3 steps on the
default digits, `+debug=smoke`), all of them in one Hydra multirun (one process)."""

import csv
import math

import torch
import yaml
from helpers.train_cli import run_module

LOSSES = [
    "ntxent",
    "orl",
    "supcon",
    "dcl",
    "dclw",
    "align_uniform",
]  # conf/loss/NAME.yaml
LOSSES += ["orl_detached", "orl_mean_tension", "orl_shuffled_tension"]  # ORL's controls
LOSSES += ["debiased", "hard_negative", "triplet", "margin"]
LOSSES += ["moco", "moco_orl"]  # a queue of momentum-encoder keys
LOSSES += ["soft_supcon", "xclr"]  # weighted InfoNCE; X-CLR with its class_means similarity
LOSSES += ["vicreg", "barlow_twins", "npair", "lifted"]  # no negatives; pair-loss relatives


def test_every_loss_trains_through_the_command_line(tmp_path):
    sweep_dir = tmp_path / "sweep"
    losses = f"loss={','.join(LOSSES)}"
    result = run_module("-m", losses, "+debug=smoke", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = {}
    for config_file in sweep_dir.glob("*/.hydra/config.yaml"):
        run_dir = config_file.parents[1]
        name = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"][
            "choices"
        ]["loss"]
        checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        with open(run_dir / "metrics.csv") as f:
            losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row["train/loss"]]
        trained[name] = (checkpoint["global_step"], losses)
    assert sorted(trained) == sorted(LOSSES)
    for name, (step, losses) in trained.items():
        assert step == 3, name
        assert losses and all(math.isfinite(x) for x in losses), name

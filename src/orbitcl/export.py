"""The trained encoder of a run, for use elsewhere: `python -m orbitcl.export RUN --out encoder.pt`.

Writes the encoder's plain state dict (its own keys: the checkpoint's `encoder.` prefix removed)
to OUT, and beside it OUT with the suffix `.json`: how to rebuild the encoder (its config, with
`_target_`), the width of its features, the input it expects and where it came from. Rebuild it
with

    encoder = hydra.utils.instantiate(json.load(open("encoder.json"))["encoder"])
    encoder.load_state_dict(torch.load("encoder.pt", weights_only=True))

For a timm or torchvision encoder (`model=timm`, `model=torchvision` and their presets, the CIFAR
ResNet-18 among them), the state dict is the library model's own (no `net.` prefix) and the JSON's
`rebuild` is the library call that rebuilds it: `timm.create_model` or the torchvision builder,
its arguments, and the lines that edit its result (the classifier removed, a CIFAR stem); its
`load` lines rebuild the model with the library alone and load the state dict with strict=True.
The run is loaded with `orbitcl.experiments.runs.load_run`, as `orbitcl.evaluate` loads it.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from orbitcl.experiments.runs import TrainedRun, load_run
from orbitcl.models import LibraryEncoder


def export_encoder(run: TrainedRun, out: Path) -> Path:
    """Writes the encoder's state dict to `out` and its description to `out` with `.json`;
    returns the JSON's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    library = isinstance(run.encoder, LibraryEncoder)
    model = run.encoder.net if library else run.encoder
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save(state, out)
    dataset = run.cfg.dataset
    description = {
        "encoder": OmegaConf.to_container(run.cfg.model.encoder, resolve=True),
        "out_dim": run.encoder.out_dim,
        "input": {
            "pixels": "float in [0, 1], then (x - mean) / std per channel",
            "mean": list(dataset.mean),
            "std": list(dataset.std),
        },
        "trained": {
            "run": run.name,
            "checkpoint": str(run.checkpoint),
            "global_step": run.global_step,
            "dataset": dataset._target_,
        },
        "load": [
            "encoder = hydra.utils.instantiate(description['encoder'])",
            f"encoder.load_state_dict(torch.load({out.name!r}, weights_only=True))",
        ],
    }
    if library:  # timm or torchvision: rebuilt by the library's own call
        description["rebuild"] = run.encoder.recipe()
        description["load"] = run.encoder.recipe_code(out.name)
    path = out.with_suffix(".json")
    path.write_text(json.dumps(description, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orbitcl.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="a .ckpt file or a run directory")
    parser.add_argument("--out", type=Path, required=True, help="the state dict's file (.pt)")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        print(f"orbitcl.export: error: {err}", file=sys.stderr)
        return 2
    description = export_encoder(run, args.out)
    print(
        f"{run.name} ({run.checkpoint}, step {run.global_step}): encoder state dict in "
        f"{args.out}, how to rebuild it in {description}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run directories written by a test, as `orbitcl.train` leaves them: `.hydra/config.yaml` and
`checkpoints/last.ckpt` with the encoder's and projector's weights."""

import copy

import torch
from omegaconf import OmegaConf


def write_run(run_dir, cfg, encoder, projector) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"projector.{k}": v for k, v in projector.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 5}, run_dir / "checkpoints" / "last.ckpt")


def rotated(projector, seed: int = 0):
    """A copy of an MLPProjector whose last layer is followed by a random rotation: z -> Q z,
    W -> Q W, b -> Q b (the contrastive loss cannot tell them apart)."""
    projector = copy.deepcopy(projector)
    last = projector.net[-1]
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(last.out_features, last.out_features, generator=g))
    with torch.no_grad():
        last.weight.copy_(q @ last.weight)
        last.bias.copy_(q @ last.bias)
    return projector

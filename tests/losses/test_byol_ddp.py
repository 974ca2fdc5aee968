"""BYOL under DDP: 2 gloo processes equal one, the EMA target included, after a few steps.

Only torch and orbitcl's losses and objectives are imported: the spawned processes import this
module, and Lightning would cost each of them tens of seconds (tests/helpers/gloo_ranks.py)."""

import torch
from helpers.gloo_ranks import WORLD, rows, spawn
from torch import nn

from orbitcl.losses import BYOLLoss
from orbitcl.training.objectives import objective_for

N_PER_RANK, D_IN, SGD_STEPS = 4, 6, 3


def byol_parts():
    """Identical on every rank (seeded), float64, no BatchNorm: per-rank BatchNorm statistics
    differ from the global batch's without sync_batchnorm (docs/beyond_negatives.md)."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(D_IN, 8), nn.ReLU()).double()
    projector = nn.Linear(8, 5).double()
    predictor = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 5)).double()
    loss = BYOLLoss(momentum=0.9)
    objective = objective_for(loss, encoder, projector, predictor=predictor)
    online = nn.ModuleDict({"encoder": encoder, "projector": projector, "objective": objective})
    return online, loss


class Step(nn.Module):
    """The step's objective through one module, so that DDP wraps it."""

    def __init__(self, online, loss):
        super().__init__()
        self.online, self.loss = online, loss

    def forward(self, views):
        zs = self.online["projector"](self.online["encoder"](torch.cat(views))).chunk(2)
        return self.online["objective"](self.loss, zs, views, None).mean()


def batches(part: slice = slice(None)):
    g = torch.Generator().manual_seed(1)
    images = [
        torch.randn(WORLD * N_PER_RANK, D_IN, generator=g, dtype=torch.float64)
        for _ in range(SGD_STEPS)
    ]
    noise = [[torch.randn(x.shape, generator=g, dtype=x.dtype) for _ in range(2)] for x in images]
    return [[(x + 0.1 * e)[part] for e in pair] for x, pair in zip(images, noise, strict=True)]


def train_byol(views_per_step, distributed: bool) -> dict:
    online, loss = byol_parts()
    step = Step(online, loss)
    model = nn.parallel.DistributedDataParallel(step) if distributed else step
    optimizer = torch.optim.SGD([p for p in online.parameters() if p.requires_grad], lr=0.5)
    objective = online["objective"]
    objective.train_started(SGD_STEPS)
    for k, views in enumerate(views_per_step):
        optimizer.zero_grad()
        model(views).backward()
        optimizer.step()
        objective.optimizer_stepped(online["encoder"], online["projector"], k)
    return {k: v.detach().clone() for k, v in online.state_dict().items()}


def _rank_byol(rank: int) -> dict:
    return train_byol(batches(rows(rank, N_PER_RANK)), distributed=True)


def test_two_processes_equal_one_for_the_byol_target(tmp_path):
    """3 SGD steps of BYOL (predictor, cosine EMA at tau_base 0.9), float64: on each of 2 gloo
    ranks (DDP's mean of the gradients, each rank's loss a mean over its images) the online
    weights, the predictor and the EMA target equal one process's on the concatenated batch."""
    per_rank = spawn(_rank_byol, tmp_path)
    one = train_byol(batches(), distributed=False)
    initial = byol_parts()[0].state_dict()
    target = [k for k in one if k.startswith("objective.momentum_encoder.")]
    assert target and all(not torch.equal(one[k], initial[k]) for k in target)  # it moved
    for rank_state in per_rank:
        assert rank_state.keys() == one.keys()
        for key in one:
            torch.testing.assert_close(rank_state[key], one[key], rtol=1e-12, atol=1e-12, msg=key)

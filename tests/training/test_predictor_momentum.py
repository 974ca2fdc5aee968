"""SimSiam and BYOL in the training step (orbitcl.training.objectives): the predictor head and
BYOL's EMA target under the cosine schedule, against a float64 hand computation and lightly's
`update_momentum` + `cosine_schedule`, and in a real fit (2 gloo processes against one:
tests/losses/test_byol_ddp.py)."""

import copy
import functools
import math

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from orbitcl.data import DigitsDataModule
from orbitcl.losses import BYOLLoss, MoCoLoss, NTXentLoss, SimSiamLoss
from orbitcl.losses.byol import byol
from orbitcl.losses.simsiam import simsiam
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.config import ConfigError, build
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.momentum import SCHEDULES, MomentumEncoder
from orbitcl.training.objectives import (
    MomentumObjective,
    PredictorObjective,
    objective_for,
)


def tau(base: float, k: int, total: int) -> float:
    """BYOL, Sec. 3.2: tau = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2, written out again."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / total) + 1.0) / 2.0


def test_the_schedules_are_the_losses_names():
    from orbitcl.losses.base import MOMENTUM_SCHEDULES

    assert tuple(SCHEDULES) == MOMENTUM_SCHEDULES


def test_cosine_ema_equals_a_float64_hand_computation_and_lightly():
    """K = 6 EMA steps of a scheduled MomentumEncoder, the online weights moving between them:
    each step equals theta <- tau_k theta + (1 - tau_k) theta_q computed by hand in float64,
    and lightly's update_momentum at cosine_schedule(k, K + 1) (its convention: it divides by
    max_steps - 1, so its K + 1 is our K; the whole difference, exactly)."""
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)).double()
    ema = MomentumEncoder(online[0], online[1], momentum=0.9, schedule="cosine")
    theirs = copy.deepcopy(nn.Sequential(ema.encoder, ema.projector))
    hand = [p.detach().clone() for p in ema.parameters()]
    total = 6
    for k in range(total):
        with torch.no_grad():  # the online weights after optimiser step k
            for p in online.parameters():
                p.add_(torch.randn_like(p))
        rate = ema.rate(k, total)
        assert rate == pytest.approx(tau(0.9, k, total), abs=1e-15)
        assert rate == pytest.approx(cosine_schedule(k, total + 1, 0.9, 1.0), abs=1e-15)
        ema.update(online[0], online[1], rate)
        update_momentum(online, theirs, m=cosine_schedule(k, total + 1, 0.9, 1.0))
        hand = [
            tau(0.9, k, total) * h + (1 - tau(0.9, k, total)) * q.detach()
            for h, q in zip(hand, online.parameters(), strict=True)
        ]
        for ours, lightly, by_hand in zip(ema.parameters(), theirs.parameters(), hand, strict=True):
            torch.testing.assert_close(ours, by_hand, rtol=0, atol=1e-14)
            torch.testing.assert_close(ours, lightly, rtol=0, atol=1e-14)
    assert ema.rate(0, total) == 0.9 and ema.rate(total, total) == 1.0
    with pytest.raises(ValueError, match="EMA step needs its rate"):
        ema.update(online[0], online[1])  # the base rate is not the step's
    with pytest.raises(ValueError, match="needs the length of training"):
        ema.rate(0, math.inf)


# Objectives: which strategy, and what is refused ------------------------------------------------


def parts():
    torch.manual_seed(0)
    return nn.Linear(4, 3), MLPProjector(3, 8, 4), MLPProjector(4, 2, 4)


def test_objectives_serve_the_predictor_and_the_target():
    encoder, projector, predictor = parts()
    simsiam_step = objective_for(SimSiamLoss(), encoder, projector, predictor=predictor)
    assert isinstance(simsiam_step, PredictorObjective) and simsiam_step.predictor is predictor
    byol_step = objective_for(BYOLLoss(), encoder, projector, predictor=predictor)
    assert isinstance(byol_step, MomentumObjective) and byol_step.predictor is predictor
    assert byol_step.momentum_encoder.schedule == "cosine"
    moco_step = objective_for(MoCoLoss(dim=4), encoder, projector)
    assert moco_step.predictor is None and moco_step.momentum_encoder.schedule == "constant"
    with pytest.raises(ValueError, match=r"^loss=BYOLLoss needs a predictor \(model.predictor\)"):
        objective_for(BYOLLoss(), encoder, projector)
    with pytest.raises(ValueError, match="^loss=NTXentLoss takes no predictor"):
        objective_for(NTXentLoss(), encoder, projector, predictor=predictor)
    with pytest.raises(ValueError, match="^aux.x=SimSiamLoss is invalid: .* only be the main loss"):
        objective_for(SimSiamLoss(), encoder, projector, "aux.x", predictor=predictor)


def test_the_loss_configs_bring_the_papers_predictors(train_config):
    from orbitcl.training.fit import _predictor

    for name, hidden in (("simsiam", 32), ("byol", 256)):  # out_dim / 4; the projector's hidden
        cfg = train_config(f"loss={name}")
        projector = build("model.projector", cfg.model.projector, in_dim=512)
        predictor = _predictor(cfg.model, build("loss", cfg.loss), projector)
        widths = [
            (m.in_features, m.out_features)
            for m in predictor.modules()
            if hasattr(m, "in_features")
        ]
        assert widths == [(128, hidden), (hidden, 128)], name
    cfg = train_config("loss=simsiam", "model/predictor=byol", "model.projector.hidden_dim=64")
    assert OmegaConf.to_container(cfg.model.predictor, resolve=True)["hidden_dim"] == 64
    assert "predictor" not in train_config("loss=ntxent").model
    bare = OmegaConf.create({"projector": {}})
    with pytest.raises(ConfigError, match="^model.predictor is missing: loss=BYOLLoss needs"):
        _predictor(bare, BYOLLoss(), projector)
    with pytest.raises(ConfigError, match=r"^loss.momentum_schedule='step' is invalid"):
        build("loss", train_config("loss=byol", "loss.momentum_schedule=step").loss)


# A real fit: SimSiam and BYOL train, the predictor learns, the target follows its schedule -----

STEPS = 3


class StepChecker(L.Callback):
    """Checks each training step against its definition, from copies taken before it."""

    def __init__(self):
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.online = copy.deepcopy(nn.Sequential(module.encoder, module.projector))
        self.predictor = copy.deepcopy(module.predictor)
        self.ema = copy.deepcopy(getattr(module.objective, "momentum_encoder", None))

    def on_before_optimizer_step(self, trainer, module, optimizer):
        # The predictor learns; the target network gets no gradient (only the EMA moves it).
        assert all(p.grad is not None for p in module.predictor.parameters())
        assert sum(float(p.grad.abs().sum()) for p in module.predictor.parameters()) > 0
        if self.ema is not None:
            assert all(p.grad is None for p in module.objective.momentum_encoder.parameters())
        in_optimiser = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert {id(p) for p in module.predictor.parameters()} <= in_optimiser

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        views, _ = batch
        with torch.no_grad():  # train mode, like the step: BatchNorm on the batch's statistics
            z = self.online(torch.cat(views))
            p_a, p_b = self.predictor(z).chunk(2)
            z_a, z_b = z.chunk(2)
            if self.ema is None:  # SimSiam: the targets are the projections themselves
                expected = simsiam(p_a, p_b, z_a, z_b)
            else:  # BYOL: the target network's projections of the same views
                expected = byol(p_a, p_b, *self.ema(torch.cat(views)).chunk(2))
        torch.testing.assert_close(outputs["loss"].detach(), expected, rtol=1e-5, atol=1e-6)
        assert not torch.equal(self.predictor.net[0].weight, module.predictor.net[0].weight)
        if self.ema is not None:  # the EMA at this step's scheduled rate, towards the new weights
            m = tau(module.loss.momentum, self.steps, STEPS)
            ema = module.objective.momentum_encoder
            online = [*module.encoder.parameters(), *module.projector.parameters()]
            for p_k, old, p_q in zip(ema.parameters(), self.ema.parameters(), online, strict=True):
                torch.testing.assert_close(p_k, m * old + (1 - m) * p_q, rtol=1e-6, atol=1e-7)
            assert not torch.equal(
                ema.encoder.features[0].weight, self.ema.encoder.features[0].weight
            )
        self.steps += 1


@pytest.mark.parametrize("loss", [SimSiamLoss(), BYOLLoss(momentum=0.9)], ids=["simsiam", "byol"])
def test_training_steps_follow_the_paper(tmp_path, loss):
    """3 steps of a real fit on digits; BYOL at tau_base 0.9 (rates 0.9, 0.925, 0.975) so that
    a wrong step of the schedule shows. The predictor's weights are in the state dict."""
    L.seed_everything(0)
    encoder = ConvEncoder(widths=[8, 16])
    projector = MLPProjector(encoder.out_dim, hidden_dim=32, out_dim=16)
    module = ContrastiveModule(
        encoder,
        projector,
        loss,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
        knn_k=20,
        predictor=MLPProjector(16, hidden_dim=8, out_dim=16),
    )
    checker = StepChecker()
    L.Trainer(
        accelerator="cpu",
        max_steps=STEPS,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[checker],
    ).fit(module, datamodule=DigitsDataModule(batch_size=32, num_workers=0, eval_batch_size=512))
    assert checker.steps == STEPS
    assert {"objective.predictor.net.0.weight", "objective.predictor.net.3.bias"} <= set(
        module.state_dict()
    )

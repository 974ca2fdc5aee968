"""MoCo (orbitcl.losses.moco, orbitcl.training.momentum): the loss against a naive float64
reference, the queue's FIFO semantics, the exact EMA update, keys without gradient,
DDP-identical queues, and checkpoints that carry the queue and the momentum encoder."""

import copy
import functools
import math
import os

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from helpers.gloo_ranks import WORLD, spawn
from helpers.reference_moco import naive_moco, naive_queue_tension
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from orbitcl.data import DigitsDataModule
from orbitcl.losses import MoCoLoss
from orbitcl.losses.moco import moco, queue_tension
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.config import ConfigError, build
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.momentum import MomentumEncoder
from orbitcl.training.resume import EpochSeed

EXACT = {"rtol": 1e-10, "atol": 1e-10}  # float64 against the naive reference
CASES = [(1, 3, 2, 0.1), (4, 8, 10, 0.2), (8, 16, 33, 1.0)]  # (N, d, K, temperature)


def inputs(n, d, size, dtype=torch.float64, seed=0):
    """Queries (leaf, requiring grad), keys and a queue, un-normalised."""
    g = torch.Generator().manual_seed(seed)
    q, k, queue = (torch.randn(m, d, generator=g, dtype=dtype) for m in (n, n, size))
    return q.requires_grad_(), k, queue


def value_and_grad(loss, q):
    return loss.detach(), torch.autograd.grad(loss, q)[0]


def assert_all_close(actual, expected, **tolerance):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, **(tolerance or EXACT))


# The loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tension, t_min", [(False, 1e-6), (True, 1e-6), (True, 0.2)])
@pytest.mark.parametrize("n, d, size, temperature", CASES)
def test_moco_matches_reference(n, d, size, temperature, tension, t_min):
    q, k, queue = inputs(n, d, size)
    ours = value_and_grad(moco(q, k, queue, temperature, tension, t_min), q)
    naive = value_and_grad(naive_moco(q, k, queue, temperature, tension, t_min), q)
    assert_all_close(ours, naive)


@pytest.mark.parametrize("t_min", [1e-6, 0.3])
def test_queue_tension_matches_reference(t_min):
    q, k, queue = inputs(6, 8, 20)
    ours, naive = queue_tension(q, k, queue, t_min), naive_queue_tension(q, k, queue, t_min)
    torch.testing.assert_close(ours, naive, **EXACT)
    assert ours.min() >= t_min and ours.max() <= 1 and (ours > t_min).any()
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1), dtype=ours.dtype)
    assert_all_close(
        value_and_grad((ours * weights).sum(), q), value_and_grad((naive * weights).sum(), q)
    )


def test_tension_changes_the_loss():
    """Not vacuous: with random directions most tensions are < 1, so ORL-on-the-queue differs."""
    q, k, queue = inputs(8, 16, 33)
    plain, scaled = moco(q, k, queue, 0.2), moco(q, k, queue, 0.2, tension=True)
    assert abs(float(plain - scaled.detach())) > 1e-3
    torch.testing.assert_close(moco(q, k, queue, 0.2, tension=True, t_min=1.0), plain, **EXACT)


def test_keys_and_queue_carry_no_gradient():
    q, k, queue = inputs(4, 8, 10)
    k.requires_grad_(), queue.requires_grad_()
    for tension in (False, True):
        grads = torch.autograd.grad(
            moco(q, k, queue, 0.2, tension), (q, k, queue), allow_unused=True
        )
        assert grads[0].abs().sum() > 0 and grads[1] is None and grads[2] is None


def test_key_equal_to_query_falls_back_to_infonce():
    """No direction from a query to its key: every negative keeps its full logit (T = 1)."""
    q, _, queue = inputs(4, 8, 10)
    k = q.detach() * 3  # the same unit vectors
    assert (queue_tension(q, k, queue) == 1).all()
    assert_all_close(
        value_and_grad(moco(q, k, queue, 0.2, tension=True), q),
        value_and_grad(moco(q, k, queue, 0.2), q),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_stay_finite(dtype):
    q, k, queue = inputs(4, 8, 10, dtype)
    queue[3] = q[0].detach()  # a queued key equal to a query: no direction to it
    queue[5] = q[1].detach() * 2
    t = queue_tension(q, k, queue)
    assert t[0, 3] == 1 and t[1, 5] == 1
    collapsed = q.detach()[:1].expand(4, -1).clone().requires_grad_()
    for query, key, bank in ((q, k, queue), (collapsed, collapsed.detach(), collapsed.detach())):
        for x in value_and_grad(moco(query, key, bank, 0.1, tension=True), query):
            assert torch.isfinite(x).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast(dtype):
    q, k, queue = (x.detach().float() for x in inputs(4, 8, 10))
    loss = moco(q.to(dtype), k.to(dtype), queue, 0.2, tension=True)
    assert loss.dtype == torch.float32
    expected = moco(q.to(dtype).float(), k.to(dtype).float(), queue, 0.2, tension=True)
    assert torch.equal(loss, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(moco(q, k, queue, 0.2, tension=True), moco(q, k, queue, 0.2, True))


@pytest.mark.parametrize("tension", [False, True])
def test_module_is_symmetric_or_one_sided(tension):
    loss = MoCoLoss(dim=8, queue_size=10, tension=tension, temperature=0.3).double()
    (z_a, k_a, _), (z_b, k_b, _) = inputs(4, 8, 1, seed=1), inputs(4, 8, 1, seed=2)
    queue = loss.queue
    expected = (moco(z_a, k_b, queue, 0.3, tension) + moco(z_b, k_a, queue, 0.3, tension)) / 2
    assert torch.equal(loss(z_a, z_b, k_a, k_b), expected)
    loss.symmetric = False
    assert torch.equal(loss(z_a, z_b, k_a, k_b), moco(z_a, k_b, queue, 0.3, tension))


def test_enqueue_between_forward_and_backward():
    """The module enqueues right after the loss, before backward: the gradient is unchanged."""
    loss = MoCoLoss(dim=8, queue_size=10, tension=True).double()
    (z_a, k_a, _), (z_b, k_b, _) = inputs(4, 8, 1, seed=1), inputs(4, 8, 1, seed=2)
    expected = torch.autograd.grad(loss(z_a, z_b, k_a, k_b), (z_a, z_b))
    value = loss(z_a, z_b, k_a, k_b)
    loss.enqueue([k_a, k_b])
    assert_all_close(torch.autograd.grad(value, (z_a, z_b)), expected)


# The queue ----------------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [True, False])
def test_queue_is_fifo(symmetric):
    """Chunks of every size, including one larger than the queue: afterwards the queue holds the
    newest K unit keys, key t of the stream in row t mod K, and the pointer is at the next row."""
    size, d = 7, 3
    loss = MoCoLoss(dim=d, queue_size=size, symmetric=symmetric).double()
    queue, pointer = loss.queue.clone(), 0
    g = torch.Generator().manual_seed(0)
    for batch in (1, 2, 3, 5, 1, 4, 2):
        views = [torch.randn(batch, d, generator=g, dtype=torch.float64) for _ in range(3)]
        loss.enqueue(views)
        served = views if symmetric else views[1:]
        for key in torch.cat(served):  # one key at a time, the plain definition of a ring buffer
            queue[pointer] = key / key.norm()
            pointer = (pointer + 1) % size
        torch.testing.assert_close(loss.queue, queue, **EXACT)
        assert int(loss.queue_ptr) == pointer
    assert not torch.equal(loss.queue, MoCoLoss(dim=d, queue_size=size).queue.double())


def test_initial_queue_is_unit_and_leaves_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    loss = MoCoLoss(dim=16, queue_size=50)
    assert torch.equal(torch.rand(3), expected)
    torch.testing.assert_close(loss.queue.norm(dim=1), torch.ones(50))
    assert loss.queue.shape == (50, 16) and int(loss.queue_ptr) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"queue_size": 0}, "queue_size=0 is invalid: must be an integer >= 1"),
        ({"queue_size": 2.5}, "queue_size=2.5 is invalid: must be an integer >= 1"),
        ({"queue_size": True}, "queue_size=True is invalid: must be an integer >= 1"),
        ({"dim": 0}, "dim=0 is invalid: must be an integer >= 1"),
        ({"momentum": 1.0}, r"momentum=1.0 is invalid: must be in \[0, 1\)"),
        ({"momentum": -0.1}, r"momentum=-0.1 is invalid: must be in \[0, 1\)"),
        ({"momentum": math.nan}, r"momentum=nan is invalid: must be in \[0, 1\)"),
        ({"temperature": 0}, "temperature=0 is invalid: must be > 0"),
        ({"t_min": 0}, r"t_min=0 is invalid: must be in \(0, 1\]"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}$"):
        MoCoLoss(**{"dim": 8, **kwargs})


def test_configs(train_config):
    for name, tension in (("moco", False), ("moco_orl", True)):
        cfg = train_config(f"loss={name}")
        loss = build("loss", cfg.loss)
        assert isinstance(loss, MoCoLoss) and loss.tension is tension
        assert loss.queue.shape == (4096, cfg.model.projector.out_dim)
        assert (loss.temperature, loss.momentum, loss.symmetric) == (0.2, 0.99, True)
    with pytest.raises(ConfigError, match=r"^loss.momentum=1.5 is invalid: must be in \[0, 1\)$"):
        build("loss", train_config("loss=moco", "loss.momentum=1.5").loss)


# The momentum encoder -----------------------------------------------------------------------


def small_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)).double(), nn.Linear(4, 3).double()


def test_ema_update_is_exact():
    encoder, projector = small_net(0)
    ema = MomentumEncoder(encoder, projector, momentum=0.9)
    m = 0.9
    for _ in range(3):
        with torch.no_grad():  # a new online state, as after an optimiser step
            for p in [*encoder.parameters(), *projector.parameters()]:
                p.add_(torch.randn_like(p))
        before = [p.clone() for p in ema.parameters()]
        ema.update(encoder, projector)
        online = [*encoder.parameters(), *projector.parameters()]
        for p_k, old, p_q in zip(ema.parameters(), before, online, strict=True):
            torch.testing.assert_close(p_k, m * old + (1 - m) * p_q, rtol=1e-15, atol=1e-15)
            assert not torch.equal(p_k, p_q) and not torch.equal(p_k, old)
    # Only parameters: the copy's BatchNorm statistics are its own.
    assert torch.equal(ema.encoder[1].running_mean, torch.zeros(4, dtype=torch.float64))
    assert all(not p.requires_grad for p in ema.parameters())


def test_momentum_zero_copies_and_invalid_momentum():
    encoder, projector = small_net(0)
    ema = MomentumEncoder(encoder, projector, momentum=0.0)
    with torch.no_grad():
        encoder[0].weight.mul_(2)
    ema.update(encoder, projector)
    assert torch.equal(ema.encoder[0].weight, encoder[0].weight)
    assert ema.encoder[0].weight.data_ptr() != encoder[0].weight.data_ptr()  # a copy
    with pytest.raises(ValueError, match=r"^momentum=1 is invalid: must be in \[0, 1\)$"):
        MomentumEncoder(encoder, projector, momentum=1)


def make_module(loss=None, seed=0):
    L.seed_everything(seed)
    encoder = ConvEncoder(widths=[8, 16])
    return ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, hidden_dim=32, out_dim=16),
        loss or MoCoLoss(dim=16, queue_size=100, momentum=0.9, tension=True),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
        knn_k=20,
    )


def test_keys_carry_no_gradient_into_the_encoders():
    module = make_module()
    views = [torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(v)) for v in (0, 1)]
    z_a, z_b = module.projector(module.encoder(torch.cat(views))).chunk(2)
    keys = module.objective.momentum_encoder(torch.cat(views))
    assert not keys.requires_grad and keys.grad_fn is None
    module.loss(z_a, z_b, *keys.chunk(2)).backward()
    assert all(p.grad is None for p in module.objective.momentum_encoder.parameters())
    assert all(p.grad is not None for p in module.encoder.parameters())
    # The copies share no storage with the online weights.
    online = {p.data_ptr() for p in module.parameters() if p.requires_grad}
    assert not online & {p.data_ptr() for p in module.objective.momentum_encoder.parameters()}


def trainer(tmp_path, callbacks=(), devices=1, **kwargs):
    return L.Trainer(
        accelerator="cpu",
        devices=devices,
        limit_val_batches=0,  # no kNN: these tests are about the weights and the queue
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
        **kwargs,
    )


def digits():
    return DigitsDataModule(batch_size=32, num_workers=0, eval_batch_size=512)


class StepRecorder(L.Callback):
    """Checks each training step against its definition, from copies taken before it."""

    def __init__(self):
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.online = copy.deepcopy(nn.Sequential(module.encoder, module.projector))
        self.ema = copy.deepcopy(module.objective.momentum_encoder)
        self.queue, self.ptr = module.loss.queue.clone(), int(module.loss.queue_ptr)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        views, _ = batch
        loss = module.loss
        with torch.no_grad():  # train mode, like the step: BatchNorm on the batch's statistics
            z_a, z_b = self.online(torch.cat(views)).chunk(2)
            k_a, k_b = self.ema(torch.cat(views)).chunk(2)
        # The loss: both views as queries against the queue *before* the step.
        expected = (
            moco(z_a, k_b, self.queue, loss.temperature, loss.tension, loss.t_min)
            + moco(z_b, k_a, self.queue, loss.temperature, loss.tension, loss.t_min)
        ) / 2
        torch.testing.assert_close(outputs["loss"].detach(), expected, rtol=1e-5, atol=1e-6)
        # The queue: the step's keys (EMA before the step) written after the pointer, FIFO.
        size, new = len(loss.queue), F.normalize(torch.cat([k_a, k_b]), dim=1)
        rows = (self.ptr + torch.arange(len(new))) % size
        torch.testing.assert_close(loss.queue[rows], new, rtol=1e-5, atol=1e-6)
        untouched = torch.ones(size, dtype=torch.bool).index_fill_(0, rows, False)
        assert torch.equal(loss.queue[untouched], self.queue[untouched])
        assert int(loss.queue_ptr) == (self.ptr + len(new)) % size
        # The EMA, after the optimiser step: p_k = m p_k + (1 - m) p_q, no gradient.
        m = module.objective.momentum_encoder.momentum
        online = [*module.encoder.parameters(), *module.projector.parameters()]
        before_online = list(self.online.parameters())
        for p_k, old, p_q, q_old in zip(
            module.objective.momentum_encoder.parameters(),
            self.ema.parameters(),
            online,
            before_online,
            strict=True,
        ):
            assert p_k.grad is None and not torch.equal(p_q, q_old)  # the step moved p_q
            torch.testing.assert_close(p_k, m * old + (1 - m) * p_q, rtol=1e-6, atol=1e-7)
        self.steps += 1


def test_training_steps_follow_moco(tmp_path):
    """Each step of a real fit: loss against the old queue, keys of the old EMA enqueued, then
    the EMA moves towards the updated weights. 2 x 32 keys per step wrap around a queue of 100."""
    recorder = StepRecorder()
    trainer(tmp_path, [recorder], max_steps=5).fit(make_module(), datamodule=digits())
    assert recorder.steps == 5


# Checkpoints and resumes ---------------------------------------------------------------------


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_checkpoint_keeps_queue_and_momentum_encoder_and_resume_is_exact(tmp_path):
    """One epoch, a checkpoint, a resume to two epochs: the weights, the queue, its pointer and the
    momentum encoder end as in an uninterrupted two-epoch run (seeded epochs, as orbitcl.train).
    Epochs of 10 steps of 2 x 32 keys, a queue of 100."""
    epoch = {"limit_train_batches": 10}
    uninterrupted = make_module()
    trainer(tmp_path / "a", [EpochSeed(0)], max_epochs=2, **epoch).fit(
        uninterrupted, datamodule=digits()
    )

    first = make_module()
    checkpointing = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path / "b", [EpochSeed(0), checkpointing], max_epochs=1, **epoch).fit(
        first, datamodule=digits()
    )
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    expected_keys = {"loss.queue", "loss.queue_ptr"} | {
        f"objective.momentum_encoder.{k}" for k in first.objective.momentum_encoder.state_dict()
    }
    assert expected_keys <= saved.keys()
    for key, value in state(first).items():
        assert torch.equal(saved[key], value), key
    fresh = make_module()
    assert not torch.equal(fresh.loss.queue, saved["loss.queue"])  # training changed them
    assert int(saved["loss.queue_ptr"]) == (10 * 64) % 100
    ema, online = (
        saved[f"{p}encoder.features.0.weight"] for p in ("objective.momentum_encoder.", "")
    )
    assert not torch.equal(ema, online)
    fresh.load_state_dict(saved)
    for key, value in state(fresh).items():
        assert torch.equal(saved[key], value), key

    resumed = make_module()
    trainer(tmp_path / "c", [EpochSeed(0)], max_epochs=2, **epoch).fit(
        resumed, datamodule=digits(), ckpt_path=tmp_path / "ckpt" / "last.ckpt", weights_only=True
    )
    a, b = state(uninterrupted), state(resumed)
    assert a.keys() == b.keys() and int(a["loss.queue_ptr"]) == (20 * 64) % 100
    worst = max(float((b[key].double() - a[key].double()).abs().max()) for key in a)
    print(f"resumed vs uninterrupted, max abs difference over the state dict: {worst:.1e}")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)


# DDP ----------------------------------------------------------------------------------------


def _rank_enqueue(rank: int) -> dict:
    loss = MoCoLoss(dim=4, queue_size=7, gather_distributed=True).double()
    g = torch.Generator().manual_seed(rank)
    for _ in range(3):  # 2 x 2 x 3 = 12 keys per step, wrapping around 7 rows
        loss.enqueue([torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(2)])
    return {"queue": loss.queue, "ptr": int(loss.queue_ptr)}


def test_ddp_ranks_enqueue_the_keys_of_all_ranks(tmp_path):
    per_rank = spawn(_rank_enqueue, tmp_path)
    one = MoCoLoss(dim=4, queue_size=7).double()
    generators = [torch.Generator().manual_seed(r) for r in range(WORLD)]
    for _ in range(3):  # the same keys in rank order, in one process
        one.enqueue(
            [
                torch.cat(
                    [
                        torch.randn(3, 4, generator=g, dtype=torch.float64)
                        for g in generators
                        for _ in range(2)
                    ]
                )
            ]
        )
    for out in per_rank:
        assert torch.equal(out["queue"], one.queue) and out["ptr"] == int(one.queue_ptr)


def _ddp_fit(rank: int, tmp: str) -> dict:
    """One rank of a 2-process DDP fit of 3 steps, joined as under torchrun."""
    os.environ.update(WORLD_SIZE=str(WORLD), NODE_RANK="0", RANK=str(rank), LOCAL_RANK=str(rank))
    module = make_module()
    strategy = DDPStrategy(process_group_backend="gloo")
    trainer(tmp, strategy=strategy, devices=WORLD, max_steps=3).fit(module, datamodule=digits())
    assert dist.get_world_size() == WORLD
    return {"gather": module.loss.gather_distributed, **state(module)}


@pytest.mark.slow
def test_ddp_fit_keeps_every_rank_queue_and_ema_identical(tmp_path):
    per_rank = spawn(_ddp_fit, tmp_path, str(tmp_path))
    assert all(out["gather"] for out in per_rank)
    zero, one = per_rank
    assert int(zero["loss.queue_ptr"]) == (3 * WORLD * 64) % 100  # the keys of both ranks
    for key, value in zero.items():
        if key.startswith(("loss.", "objective.momentum_encoder.")) and "running" not in key:
            assert torch.equal(one[key], value), key

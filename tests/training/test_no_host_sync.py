"""A training step (forward, backward, optimiser step) issues no op that synchronises a CUDA
device with the host.

Run on the CPU, where nothing waits, the ops are recorded by name at the dispatcher: those that
on CUDA must read a device value on the host (a scalar, a count of elements, a shape that depends
on the data). Each is reported with its caller in orbitcl, so the test names what to fix.
"""

import tempfile
import traceback
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers.paths import CONF_DIR
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from torch.utils._python_dispatch import TorchDispatchMode

import orbitcl
from orbitcl.callbacks import names
from orbitcl.callbacks.online_linear import OnlineLinearClassifier
from orbitcl.data import DigitsDataModule
from orbitcl.losses import (
    MoCoLoss,
    NTXentLoss,
    ORLLoss,
    ORLMeanTensionLoss,
    ORLShuffledTensionLoss,
    SoftSupConLoss,
    SupConLoss,
    VRNLoss,
    XCLRLoss,
)
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.module import ContrastiveModule

aten = torch.ops.aten
# Ops whose output on CUDA needs a device value on the host: .item() and bool() become
# _local_scalar_dense and is_nonzero; nonzero, unique and masked_select size their output from
# the data; equal returns a Python bool.
SYNCING = {
    aten._local_scalar_dense.default,
    aten.is_nonzero.default,
    aten.nonzero.default,
    aten.nonzero_static.default,
    aten.masked_select.default,
    aten.equal.default,
    aten.item.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
}
# Indexing with a boolean mask: its output's length (index) or the elements it writes
# (index_put) come from a nonzero on the device.
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}
SOURCE = str(Path(orbitcl.__file__).parent)
TORCH = str(Path(torch.__file__).parent)


def _bool_indexed(func, args) -> bool:
    if func not in INDEXING:
        return False
    indices = args[1]
    return any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices)


def _caller() -> str:
    """The innermost frame in orbitcl's sources, else the innermost outside torch and this
    recorder."""
    stack = traceback.extract_stack()[:-1]
    frames = [f for f in stack if f.filename.startswith(SOURCE)]
    if not frames:
        frames = [
            f
            for f in stack
            if not f.filename.startswith(TORCH) and f.name not in ("__torch_dispatch__", "_caller")
        ]
    frame = frames[-1]
    return f"{frame.filename.removeprefix(SOURCE + '/')}:{frame.lineno} ({frame.name})"


class RecordSyncs(TorchDispatchMode):
    """Records (op, caller) for every syncing op while `active`."""

    def __init__(self):
        super().__init__()
        self.active = False
        self.seen: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.active and (func in SYNCING or _bool_indexed(func, args)):
            self.seen.append((str(func), _caller()))
        return func(*args, **(kwargs or {}))


class SyncWindow(L.Callback):
    """Records from the start of each training batch to its end: training_step, backward and
    the optimiser step, without Lightning's data loading, logging or checkpointing."""

    def __init__(self, mode: RecordSyncs):
        self.mode = mode

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.mode.active = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.mode.active = False


def syncs_of_training(
    loss: torch.nn.Module, steps: int = 3, aux: dict | None = None
) -> list[tuple[str, str]]:
    torch.manual_seed(0)
    encoder = ConvEncoder(widths=(8, 16))
    needs_predictor = getattr(loss, "needs", None) is not None and loss.needs.predictor
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, 32, 16),
        loss,
        # SGD: AdamW's step counters are CPU tensors even on CUDA, so their .item() is no sync
        # there, but it would be recorded here.
        optimizer=lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
        aux=aux,
        predictor=MLPProjector(16, 32, 16) if needs_predictor else None,  # SimSiam's, BYOL's
    )
    mode = RecordSyncs()
    trainer = L.Trainer(
        max_steps=steps,
        log_every_n_steps=50,  # no step logs: the steps between log steps are measured
        # The online linear classifier (on by default) trains in on_train_batch_end, which
        # Lightning calls on the callbacks in order: the window closes after it.
        callbacks=[OnlineLinearClassifier(), SyncWindow(mode)],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    with mode:
        trainer.fit(module, datamodule=DigitsDataModule(batch_size=32, num_workers=0))
    assert trainer.global_step == steps
    return mode.seen


LOSSES = {
    "ntxent": lambda: NTXentLoss(0.5),
    "orl_eager": lambda: ORLLoss(0.5, backend="eager"),
    "moco": lambda: MoCoLoss(16, 0.2, queue_size=256, momentum=0.99),
    "orl_mean_tension": lambda: ORLMeanTensionLoss(0.5),
    "orl_shuffled_tension": lambda: ORLShuffledTensionLoss(0.5),
    "orl_compiled": lambda: ORLLoss(0.5, backend="compile"),
    "orl_detached": lambda: ORLLoss(0.5, detach_tension=True, backend="eager"),
    "xclr": lambda: XCLRLoss(0.1, 0.1, class_similarity=torch.eye(10).tolist()),
    "supcon": lambda: SupConLoss(0.1),
    "soft_supcon": lambda: SoftSupConLoss(0.1, 0.1),
    "moco_orl": lambda: MoCoLoss(16, 0.2, queue_size=256, momentum=0.99, tension=True),
    "byol": lambda: from_config("byol"),  # a predictor and an EMA target
}


def from_config(name: str) -> torch.nn.Module:
    """The loss of conf/loss/NAME.yaml at its defaults, for the test's 16-wide projections."""
    node = yaml.safe_load((CONF_DIR / "loss" / f"{name}.yaml").read_text())
    node = {k: v for k, v in node.items() if k != "defaults"}
    if "queue_size" in node:  # MoCo's: a few batches of keys
        node |= {"dim": 16, "queue_size": 256}
    return instantiate(node)


# Every other loss config, on class labels (y-Aware's continuous labels are not the digits'):
# each is sync-free too.
OTHERS = sorted(
    {p.stem for p in (CONF_DIR / "loss").glob("*.yaml")}
    - {"ntxent", "orl", "moco", "orl_mean_tension", "orl_shuffled_tension", "orl_detached"}
    - set(LOSSES)
    - {"y_aware"}
)


@pytest.mark.parametrize("name", LOSSES)
def test_training_step_has_no_host_sync(name):
    assert_no_syncs(name, LOSSES[name]())


@pytest.mark.parametrize("name", OTHERS)
def test_every_other_loss_configs_training_step_has_no_host_sync(name):
    assert_no_syncs(name, from_config(name))


def assert_no_syncs(name: str, loss: torch.nn.Module) -> None:
    seen = syncs_of_training(loss)
    report = "\n".join(sorted({f"  {op} from {caller}" for op, caller in seen}))
    assert not seen, f"{len(seen)} host syncs in 3 training steps of {name}:\n{report}"


def test_the_recorder_sees_an_item_and_its_caller():
    # The recorder itself: a .item() and a boolean mask, each named with this test as caller
    # (outside orbitcl: the innermost frame).
    mode = RecordSyncs()
    x = torch.arange(4.0)
    with mode:
        mode.active = True
        x.sum().item()
        x[x > 1].sum()
    ops = [op for op, _ in mode.seen]
    assert ops[0] == "aten._local_scalar_dense.default"
    assert "aten.index.Tensor" in ops
    assert all("test_no_host_sync.py" in caller for _, caller in mode.seen)


def test_vrn_aux_has_no_host_sync():
    seen = syncs_of_training(NTXentLoss(0.5), aux={"vrn": (30.0, VRNLoss())})
    report = "\n".join(sorted({f"  {op} from {caller}" for op, caller in seen}))
    assert not seen, f"{len(seen)} host syncs in 3 training steps of ntxent +aux=vrn:\n{report}"


def test_compiled_orl_kernels_trace_whole_and_sync_free(monkeypatch):
    # Under a TorchDispatchMode torch.compile does not compile (Dynamo skips the frame), so the
    # ORL case above runs the compiled kernels' pure functions eagerly. Here they are compiled
    # with fullgraph=True, which turns any graph break into an error: by default Dynamo breaks
    # the graph at every op whose output shape or Python value depends on the data (.item(),
    # nonzero, unique, boolean-mask indexing, `if tensor:`), exactly the syncs. The backend
    # lowers each graph to aten ops (AOTAutograd, without Inductor's C++ compile: fast) and
    # records them, to check them against SYNCING too.
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    from orbitcl.losses.kernels import compiled

    graphs = []

    def record(gm, example_inputs):
        graphs.append({node.target for node in gm.graph.nodes if node.op == "call_function"})
        return make_boxed_func(gm.forward)

    backend = aot_autograd(fw_compiler=record)
    torch._dynamo.reset()
    monkeypatch.setattr(compiled, "broken", None)
    monkeypatch.setattr(
        compiled,
        "_compiled",
        {
            pure: torch.compile(pure, fullgraph=True, backend=backend)
            for pure in (compiled._forward, compiled._backward)
        },
    )
    z_a, z_b = torch.randn(2, 6, 4).unbind()
    z_a.requires_grad_()
    ORLLoss(0.5, backend="compile")(z_a, z_b).backward()
    torch._dynamo.reset()
    assert compiled.broken is None, compiled.broken  # no graph break, no fallback to eager
    assert len(graphs) == 2  # the forward block and the backward block, one graph each
    ops = set().union(*graphs)
    assert aten.exp.default in ops  # the recorder saw the kernels' ops
    assert not ops & SYNCING, ops & SYNCING


class StepWindows(L.Callback):
    """Records each step's syncs from its start to the next step's start: the step, its
    callbacks, the progress bar and Lightning's logging; keyed by whether it is a log step. The
    epoch's end, where the module reads its count of non-finite steps once, is left out."""

    def __init__(self, mode: RecordSyncs):
        self.mode = mode
        self.steps: list[tuple[bool, list]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.mode.active = True
        self.steps.append((trainer._logger_connector.should_update_logs, []))
        self.mode.seen = self.steps[-1][1]

    def on_train_epoch_end(self, trainer, pl_module):
        self.mode.active = False


def test_logs_and_progress_bar_read_the_loss_at_log_steps_only():
    # The progress bar and a logger on, log_every_n_steps=2: the steps between log steps issue
    # no sync at all (no .item() for the bar, no all-reduce), and the bar and the logger show
    # the loss of the log steps.
    torch.manual_seed(0)
    encoder = ConvEncoder(widths=(8, 16))
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, 32, 16),
        NTXentLoss(0.5),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
    )
    mode = RecordSyncs()
    window = StepWindows(mode)
    logged = []

    class Logged(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if names.TRAIN_LOSS in trainer.progress_bar_metrics:
                logged.append((trainer.global_step, trainer.progress_bar_metrics[names.TRAIN_LOSS]))

    trainer = L.Trainer(
        max_steps=5,
        log_every_n_steps=2,
        callbacks=[window, Logged()],
        logger=CSVLogger(tmp_dir := tempfile.mkdtemp()),
        enable_progress_bar=True,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    with mode:
        trainer.fit(module, datamodule=DigitsDataModule(batch_size=32, num_workers=0))
    log_steps = [i for i, (is_log, _) in enumerate(window.steps) if is_log]
    assert log_steps == [1, 3]  # steps 2 and 4 of 5
    for i, (is_log, seen) in enumerate(window.steps):
        if not is_log:
            report = "\n".join(sorted({f"  {op} from {caller}" for op, caller in seen}))
            assert not seen, f"{len(seen)} host syncs in step {i}, not a log step:\n{report}"
    # The bar shows each log step's loss from then on, a float (read once, at the log step).
    assert [step for step, _ in logged] == [2, 3, 4, 5]
    assert all(isinstance(value, float) for _, value in logged)
    rows = (Path(tmp_dir) / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert rows.count("\n") - 1 == 2 and names.TRAIN_LOSS in rows.splitlines()[0]

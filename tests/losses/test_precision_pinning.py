"""The Gram rows of every tension-based loss and of the similarity statistics run in IEEE fp32,
whatever the global TF32 or matmul-precision setting, and that setting is restored after.

The CPU cannot show TF32's error (its fp32 products ignore these settings), so this observes
the setting inside each product: a dispatch mode records, at every matrix product, the global
float32 matmul precision and allow_tf32 in force. Its CUDA counterpart, that T then agrees with
float64, is tests/gpu/test_gpu.py (run by `make gpu-check`).
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from orbitcl.losses import MoCoLoss, ORLLoss
from orbitcl.losses.functional import tension
from orbitcl.losses.orl_mean_tension import ORLMeanTensionLoss
from orbitcl.losses.orl_shuffled_tension import ORLShuffledTensionLoss
from orbitcl.metrics.similarity import similarities

aten = torch.ops.aten
PRODUCTS = {aten.mm.default, aten.mm.out, aten.addmm.default, aten.addmm_.default}
PRODUCTS |= {aten.bmm.default, aten.baddbmm.default, aten.matmul.default}


class RecordPrecision(TorchDispatchMode):
    """For every matrix product: (op, global float32 matmul precision, allow_tf32) at call."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in PRODUCTS:
            state = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32)
            self.seen.append((str(func), *state))
        return func(*args, **(kwargs or {}))


@pytest.fixture(params=["high", "medium"])
def tf32_globally(request):
    """TF32 switched on for the whole process, as Lightning's start-up hint recommends."""
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(request.param)
    yield request.param
    torch.set_float32_matmul_precision(saved)


def _views(n=24, d=8):
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(n, d, generator=g)
    z_b = (z_a + 0.05 * torch.randn(n, d, generator=g)).requires_grad_()
    return z_a.requires_grad_(), z_b


def _moco_orl():
    loss = MoCoLoss(dim=8, queue_size=32, tension=True)
    z_a, z_b = _views()
    return loss(z_a, z_b, z_b.detach(), z_a.detach())


CASES = {
    "orl_eager": lambda: ORLLoss(0.5, backend="eager")(*_views()),
    "orl_detached": lambda: ORLLoss(0.5, detach_tension=True, backend="eager")(*_views()),
    "orl_within_view": lambda: ORLLoss(0.5, negatives="within_view", backend="eager")(*_views()),
    "orl_mean_tension": lambda: ORLMeanTensionLoss(0.5)(*_views()),
    "orl_shuffled_tension": lambda: ORLShuffledTensionLoss(0.5)(*_views()),
    "moco_orl": _moco_orl,
    "tension": lambda: tension(*_views()).sum(),
}


@pytest.mark.parametrize("case", CASES)
def test_tension_products_run_in_ieee_fp32(case, tf32_globally):
    recorder = RecordPrecision()
    with recorder:
        loss = CASES[case]()
        if loss.requires_grad:
            loss.backward()
    assert recorder.seen, "no matrix product seen"
    unpinned = [op for op, precision, tf32 in recorder.seen if precision != "highest" or tf32]
    assert not unpinned, f"{case}: products under TF32 ({tf32_globally}): {unpinned}"
    # Restored: the encoder keeps the global setting.
    assert torch.get_float32_matmul_precision() == tf32_globally


def test_similarity_statistics_run_in_ieee_fp32(tf32_globally):
    recorder = RecordPrecision()
    with recorder:
        similarities(*(z.detach() for z in _views()), block=10)
    assert recorder.seen
    assert all(precision == "highest" and not tf32 for _, precision, tf32 in recorder.seen)
    assert torch.get_float32_matmul_precision() == tf32_globally


def test_ntxent_keeps_the_global_setting(tf32_globally):
    # Scoped to the tension: NT-Xent's logits tolerate TF32, and keep its speed.
    from orbitcl.losses import NTXentLoss

    recorder = RecordPrecision()
    with recorder:
        NTXentLoss(0.5)(*_views()).backward()
    assert recorder.seen
    assert all(precision == tf32_globally for _, precision, _ in recorder.seen)


def test_the_projector_runs_in_ieee_fp32_while_the_encoder_keeps_tf32(tf32_globally):
    from orbitcl.models import MLPProjector
    from orbitcl.training.projection import project

    projector, encoder = MLPProjector(in_dim=8, hidden_dim=16, out_dim=4), torch.nn.Linear(8, 8)
    with RecordPrecision() as record:
        project(projector, encoder(torch.randn(5, 8)))
    (encoder_product, *projector_products) = record.seen
    assert encoder_product[1] == tf32_globally  # the global setting reaches the encoder
    assert len(projector_products) == 2  # one per linear layer
    assert all(p == "highest" and not tf32 for _, p, tf32 in projector_products)
    assert torch.get_float32_matmul_precision() == tf32_globally  # restored after

"""A non-finite loss stops the run with a diagnosis and keeps the last good checkpoint, or is
skipped and counted."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from orbitcl.data import DigitsDataModule
from orbitcl.losses import ORLLoss
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.module import ContrastiveModule
from orbitcl.training.nonfinite import NonFiniteLossError


class NaNAtStep(nn.Module):
    """ORL, except that the loss of one training step is NaN."""

    def __init__(self, bad_step: int):
        super().__init__()
        self.orl, self.bad_step, self.calls = ORLLoss(0.5), bad_step, 0

    def forward(self, z_a, z_b):
        self.calls += 1
        loss = self.orl(z_a, z_b)
        return loss * float("nan") if self.calls == self.bad_step + 1 else loss


class RecordWeights(L.Callback):
    """The flattened weights after every training step."""

    def __init__(self):
        self.after_step: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after_step.append(nn.utils.parameters_to_vector(pl_module.parameters()).detach())


weights = RecordWeights()


def fit(tmp_path, on_nonfinite_loss, bad_step=3, steps=5):
    torch.manual_seed(0)
    weights.after_step = []
    encoder = ConvEncoder(widths=(8, 16))
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, 32, 16),
        NaNAtStep(bad_step),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        on_nonfinite_loss=on_nonfinite_loss,
    )
    checkpoint = ModelCheckpoint(tmp_path, every_n_train_steps=1, save_last=True)
    trainer = L.Trainer(
        max_steps=steps,
        callbacks=[checkpoint, weights],
        logger=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    datamodule = DigitsDataModule(batch_size=32, num_workers=0)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def test_stop_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as raised:
        fit(tmp_path, "stop")
    message = str(raised.value)
    assert "Non-finite loss at step 3 (epoch 0, batch 3)" in message
    assert "NaNAtStep on views (0, 1) = nan" in message
    for stat in ("norms in [", "cosine in [", "tension in ["):
        assert stat in message
    # Decided on the device: the bad step's gradients were zeroed, so plain SGD left the weights
    # as the three good steps made them; the host read the flag at the epoch's end.
    assert torch.equal(weights.after_step[3], weights.after_step[2])
    assert not torch.equal(weights.after_step[2], weights.after_step[1])
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())


def test_skip_counts_and_trains_on(tmp_path):
    module, trainer = fit(tmp_path, "skip")
    assert module.skipped_batches == 1
    # Lightning still counts the skipped batch as a step (its gradients are zeroed).
    assert trainer.global_step == module.loss.calls == 5
    assert torch.equal(weights.after_step[3], weights.after_step[2])
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_unknown_policy_is_rejected():
    with pytest.raises(ValueError, match="^on_nonfinite_loss='ignore' is invalid"):
        ContrastiveModule(nn.Identity(), nn.Identity(), nn.Identity(), None, None, 1, 0.1, "ignore")

"""A save interrupted half-way (a kill, a full disk) never leaves a broken last.ckpt: Lightning
writes to a temporary file beside it and renames it into place only once it is complete."""

import lightning as L
import pytest
import torch
from fsspec.implementations.local import LocalFileOpener
from lightning.pytorch.demos.boring_classes import BoringModel


class Interrupted(Exception):
    pass


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = L.Trainer(
        max_steps=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(BoringModel())
    last = tmp_path / "last.ckpt"
    trainer.save_checkpoint(last)
    before = last.read_bytes()

    real_write = LocalFileOpener.write

    def write_half_then_die(self, data):
        real_write(self, data[: len(data) // 2])
        raise Interrupted

    monkeypatch.setattr(LocalFileOpener, "write", write_half_then_die)
    trainer.fit_loop.epoch_loop._batches_that_stepped += 1  # a different checkpoint
    with pytest.raises(Interrupted):
        trainer.save_checkpoint(last)
    monkeypatch.undo()

    assert last.read_bytes() == before
    assert torch.load(last, weights_only=True)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["last.ckpt"]  # no leftovers

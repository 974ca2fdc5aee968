"""A callback's surroundings without Lightning: the module parts and trainer fields that the
validation-time diagnostics read, for in-process tests on digits."""

from types import SimpleNamespace

import torch


class Recorder(SimpleNamespace):
    """A LightningModule's part a callback uses: encoder, projector and `log`."""

    def log(self, name, value, **kwargs):
        self.logged[name] = value


def digits_harness(tmp_path, datamodule, global_step: int):
    """(trainer, module) for `datamodule` (set up here): a linear encoder (64 -> 16) and
    projector (16 -> 8) from seed 0, and a trainer on rank zero outside sanity checking."""
    datamodule.setup("fit")
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16))
    module = Recorder(encoder=encoder, projector=torch.nn.Linear(16, 8), logged={})
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        global_step=global_step,
        default_root_dir=str(tmp_path),
        loggers=[],
        datamodule=datamodule,
    )
    return trainer, module

"""A run stopped after some epochs, as if killed there: a resumable checkpoint with steps left,
in the test's own process (a `kill -9` needs a subprocess: ~10 s of imports)."""

import lightning as L


class StopAfterEpochs(L.Callback):
    """Ends training after `epochs` epochs, whatever the trainer's length; the checkpoint of the
    last one is written as usual (ModelCheckpoint runs after this callback)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def stop_after(epochs: int) -> list[str]:
    """The overrides that add it as `callbacks.stop` (callbacks.* may change on resume)."""
    return [
        f"+callbacks.stop._target_={__name__}.StopAfterEpochs",
        f"+callbacks.stop.epochs={epochs}",
    ]

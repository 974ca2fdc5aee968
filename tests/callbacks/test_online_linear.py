"""The online linear classifier: plain SGD on the labelled images' detached features, apart from
the model's training, saved and restored with checkpoints. (Under DDP: test_distributed.py.)"""

import functools
import io
from types import SimpleNamespace

import lightning as L
import torch
import torch.nn.functional as F

from orbitcl.callbacks import OnlineLinearClassifier
from orbitcl.data import NO_LABEL, DigitsDataModule
from orbitcl.losses import NTXentLoss
from orbitcl.models import ConvEncoder, MLPProjector
from orbitcl.training.module import ContrastiveModule

SGD = functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9, weight_decay=1e-3)


def started(
    callback: OnlineLinearClassifier, dim: int = 6, classes: int = 3, continuous: str | None = None
):
    """The callback as Lightning prepares it: setup, then on_fit_start on the CPU."""
    datamodule = SimpleNamespace(num_classes=classes, continuous_labels=continuous)
    trainer = SimpleNamespace(datamodule=datamodule, is_global_zero=True)
    module = SimpleNamespace(encoder=SimpleNamespace(out_dim=dim), device=torch.device("cpu"))
    callback.setup(trainer, module, "fit")
    callback.on_fit_start(trainer, module)
    return callback


def batches(n_steps: int = 4, n: int = 12, dim: int = 6):
    generator = torch.Generator().manual_seed(0)
    for _ in range(n_steps):
        labels = torch.randint(0, 3, (n,), generator=generator)
        labels[:3] = NO_LABEL  # a few images without a label
        yield torch.randn(n, dim, generator=generator), labels


def test_each_step_is_sgd_on_the_mean_loss_of_the_labelled_images():
    callback = started(OnlineLinearClassifier(SGD))
    reference = torch.nn.Linear(6, 3)
    torch.nn.init.zeros_(reference.weight)
    torch.nn.init.zeros_(reference.bias)
    optimizer = SGD(reference.parameters())
    for features, labels in batches():
        callback.train_step(features, labels, all_sum=lambda x: x)
        labelled = labels != NO_LABEL
        optimizer.zero_grad()
        F.cross_entropy(reference(features[labelled]), labels[labelled]).backward()
        optimizer.step()
    assert callback.labelled_seen == 4 * 9
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(callback.classifier.state_dict()[name], value)
        assert value.abs().max() > 0


def test_unlabelled_batches_leave_it_untouched():
    callback = started(OnlineLinearClassifier(SGD))
    features, labels = next(batches())
    callback.train_step(features, torch.full_like(labels, NO_LABEL), all_sum=lambda x: x)
    assert callback.labelled_seen == 0 and callback.classifier.weight.abs().max() == 0


def test_no_classes_no_classifier():
    assert started(OnlineLinearClassifier(), classes=0).classifier is None


def test_continuous_training_labels_no_classifier():
    # Rotated MNIST: 10 digit classes for kNN, but the training labels are angles.
    angles = "label_space='circle' labels each training image with its rotation angle"
    assert started(OnlineLinearClassifier(), continuous=angles).classifier is None


def test_its_state_survives_a_checkpoint():
    trained = started(OnlineLinearClassifier(SGD))
    for features, labels in batches():
        trained.train_step(features, labels, all_sum=lambda x: x)
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    resumed = OnlineLinearClassifier(SGD)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))  # as Lightning restores it
    started(resumed)
    assert resumed.labelled_seen == trained.labelled_seen
    features, labels = next(batches(n_steps=1))
    for callback in (trained, resumed):  # the same next step: weights and momentum restored
        callback.train_step(features, labels, all_sum=lambda x: x)
    for name, value in trained.classifier.state_dict().items():
        torch.testing.assert_close(resumed.classifier.state_dict()[name], value)


def fit(tmp_path, *callbacks) -> dict:
    """Two training steps and a validation on digits; the weights of the module afterwards."""
    L.seed_everything(0)
    encoder = ConvEncoder(widths=[8, 16])
    module = ContrastiveModule(
        encoder,
        MLPProjector(encoder.out_dim, hidden_dim=32, out_dim=16),
        NTXentLoss(0.5),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
        knn_k=20,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=DigitsDataModule(batch_size=64, num_workers=0))
    return {"weights": module.state_dict(), "metrics": trainer.callback_metrics}


def test_it_trains_beside_the_model_without_changing_it(tmp_path):
    callback = OnlineLinearClassifier(SGD)
    with_it, without = fit(tmp_path, callback), fit(tmp_path)
    assert with_it["weights"].keys() == without["weights"].keys()  # not part of the model
    for name, value in without["weights"].items():
        assert torch.equal(with_it["weights"][name], value), name  # no gradient reached it
    assert callback.labelled_seen == 2 * 2 * 64  # 2 steps of 64 images x 2 views
    assert 0.1 < float(with_it["metrics"]["val/linear_acc"]) <= 1  # 10 classes
    assert "val/linear_acc" not in without["metrics"]

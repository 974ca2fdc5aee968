"""Fixed orbits (orbitcl.metrics.orbits) and the linear probe (orbitcl.metrics.probe)."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torchvision.transforms import v2

from orbitcl.data import DigitsDataModule
from orbitcl.metrics.orbits import embed, embed_orbits, orbits_of_test_split, sample_orbits
from orbitcl.metrics.probe import linear_probe_accuracy
from orbitcl.models import ConvEncoder, MLPProjector


@pytest.fixture(scope="module")
def digits():
    """Digits whose "augmentation" is a one-pixel roll, so views are known exactly."""
    datamodule = DigitsDataModule(augment=lambda image: image.roll(1, dims=-1))
    datamodule.setup()
    return datamodule


def test_orbits_are_fixed_by_the_seed_and_leave_the_global_rng_alone(digits):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = orbits_of_test_split(digits, n_anchors=20, n_views=3, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # training draws what it would have drawn
    again = orbits_of_test_split(digits, n_anchors=20, n_views=3, seed=0)
    other = orbits_of_test_split(digits, n_anchors=20, n_views=3, seed=1)
    assert torch.equal(first.indices, again.indices) and torch.equal(first.views, again.views)
    assert not torch.equal(first.indices, other.indices)


def test_orbits_hold_the_test_images_and_their_augmented_views(digits):
    orbits = orbits_of_test_split(digits, n_anchors=20, n_views=3, seed=0)
    images, labels = digits._test
    assert orbits.anchors.shape == (20, 1, 8, 8) and orbits.views.shape == (20, 3, 1, 8, 8)
    assert torch.equal(orbits.labels, labels[orbits.indices])
    # The anchors as the split holds them (uint8, normalised when embedded); the views float.
    assert orbits.anchors.dtype == torch.uint8 and orbits.views.dtype == torch.float32
    assert torch.equal(orbits.anchors, images[orbits.indices])
    expected = torch.stack([digits.eval_transform(image) for image in images[orbits.indices]])
    # This datamodule's "augmentation" is a one-pixel roll, then the eval transform.
    assert torch.equal(orbits.views[:, 1], expected.roll(1, dims=-1))


def test_batched_views_are_the_batch_transform_of_each_image_fixed_by_the_seed(digits):
    images, labels = digits._test
    sizes = []

    def batch_transform(x, generator):  # a known "augmentation": + a uniform draw per image
        sizes.append(len(x))
        return x.float() + torch.rand(len(x), generator=generator)[:, None, None, None]

    def orbits(seed):
        return sample_orbits(images, labels, 20, 3, None, seed, batch_transform)

    first, again, other = orbits(0), orbits(0), orbits(1)
    assert sizes == [60, 60, 60]  # all views of all images in one call
    assert first.views.shape == (20, 3, 1, 8, 8)
    assert torch.equal(first.anchors, images[first.indices])  # uint8, as in the split
    assert torch.equal(first.views, again.views) and not torch.equal(first.views, other.views)
    noise = first.views - images[first.indices].float()[:, None]  # each view's own draw
    assert ((noise >= 0) & (noise < 1)).all()
    assert (noise[:, 0] != noise[:, 1]).all()


def test_random_augmentations_give_distinct_views():
    datamodule = DigitsDataModule(augment=v2.RandomResizedCrop(8, scale=(0.5, 1.0)))
    datamodule.setup()
    orbits = orbits_of_test_split(datamodule, n_anchors=30, n_views=4, seed=0)
    assert not torch.equal(orbits.views[:, 0], orbits.views[:, 1])


def test_more_anchors_than_images_takes_the_whole_split():
    images = torch.randint(0, 255, (5, 1, 4, 4), dtype=torch.uint8)
    orbits = sample_orbits(images, torch.arange(5), 50, 2, lambda x: x.float())
    assert orbits.indices.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n_views=0"):
        sample_orbits(images, torch.arange(5), 5, 0, lambda x: x)


def test_embedding_uses_eval_mode_and_restores_training_mode(digits):
    torch.manual_seed(0)
    encoder, projector = ConvEncoder(widths=(8, 16)), MLPProjector(16, 32, 8)
    encoder.train()
    projector.train()
    orbits = orbits_of_test_split(digits, n_anchors=10, n_views=3, seed=0)
    # Batches of 7: no matter.
    spaces = embed_orbits(encoder, projector, orbits, batch_size=7, normalise=digits.normalise)
    assert encoder.training and projector.training
    assert all(m.training for m in (*encoder.modules(), *projector.modules()))
    anchors, views = spaces["projector"]
    assert anchors.shape == (10, 8) and views.shape == (10, 3, 8)
    assert spaces["encoder"][1].shape == (10, 3, 16)
    # Eval mode: an image embeds the same alone or in any batch (BatchNorm's running stats).
    features, _ = embed(encoder, projector, orbits.views[3, 2:3])
    assert torch.allclose(features[0], spaces["encoder"][1][3, 2], atol=1e-5)


def test_probe_separates_separable_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 10, generator=g) * 5
    labels = torch.arange(4).repeat(100)
    x = centres[labels] + torch.randn(400, 10, generator=g) * 0.5
    assert linear_probe_accuracy(x[:300], labels[:300], x[300:], labels[300:]) == 1.0


def test_probe_matches_scikit_learn_logistic_regression():
    """On overlapping classes the probe is the same convex problem scikit-learn solves."""
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 5, generator=g)
    labels = torch.arange(3).repeat(300)
    x = centres[labels] + torch.randn(900, 5, generator=g)
    train, test = slice(0, 600), slice(600, 900)
    ours = linear_probe_accuracy(x[train], labels[train], x[test], labels[test])
    mean, std = x[train].mean(0), x[train].std(0)
    reference = LogisticRegression(C=1 / (2 * 1e-4 * 600), max_iter=1000)
    reference.fit(((x[train] - mean) / std).numpy(), labels[train].numpy())
    theirs = reference.score(((x[test] - mean) / std).numpy(), labels[test].numpy())
    assert 0.5 < ours < 1.0 and ours == pytest.approx(theirs, abs=0.01)
    # float32, the probe's dtype on a GPU: the same optimum to float32's rounding (one
    # prediction of the 300 may flip).
    single = linear_probe_accuracy(
        x[train], labels[train], x[test], labels[test], dtype=torch.float32
    )
    assert single == pytest.approx(ours, abs=1 / 300)

"""The diagnostics' fixed images are held uint8, as the split holds them, and normalised on the
model's device when embedded (orbitcl.metrics.orbits, callbacks.class_geometry): the same images
from the same seed, and the same embeddings to float rounding, as the eval-transformed float
images they replace; on digits (in memory) and on an image folder (decoded from files)."""

import pytest
import torch
from helpers import gpu_checks
from helpers.data_files import write_image_folder
from torch import nn
from torchvision.transforms import v2

from orbitcl.callbacks.class_geometry import images_per_class
from orbitcl.data import DigitsDataModule, ImageFolderDataModule
from orbitcl.metrics.orbits import (
    embed,
    embed_batches,
    embed_orbits,
    fixed_test_images,
    orbits_of_test_split,
)

SIZE = 8


@pytest.fixture(scope="module", params=["digits", "folder"])
def datamodule(request, tmp_path_factory):
    crop = v2.RandomResizedCrop(SIZE, scale=(0.5, 1.0))  # views differ: the anchors must not
    if request.param == "digits":
        datamodule = DigitsDataModule(num_workers=0, augment=crop)
    else:  # colour images, a mean and std per channel
        root = write_image_folder(tmp_path_factory.mktemp("data") / "pets", per_class=15)
        datamodule = ImageFolderDataModule(
            root,
            image_size=SIZE,  # decoded, resized to 8 x 8
            channels=3,
            test_fraction=0.4,  # 6 test images of each class
            batch_size=8,
            mean=(0.4, 0.5, 0.6),
            std=(0.2, 0.25, 0.3),
            num_workers=0,
            augment=crop,
        )
        datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def model(channels: int) -> tuple[nn.Module, nn.Module]:
    """A small conv encoder with BatchNorm (eval mode: its running statistics, here not the
    identity) and a linear projector, from seed 0, in training mode."""
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(4)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    encoder = nn.Sequential(
        nn.Conv2d(channels, 4, 3), norm, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16)
    )
    return encoder.train(), nn.Linear(16, 8).train()


def transformed(datamodule, images) -> torch.Tensor:
    """The old float path: the eval transform of each image, on the CPU: (B, C, H, W)."""
    return torch.stack([datamodule.eval_transform(image) for image in images])


def chosen(n_items: int, n: int, seed: int) -> list[int]:
    """The old recipes' choice: a permutation seeded with `seed`, its first n, sorted."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_items, generator=generator)[:n].sort().values.tolist()


def assert_close(ours, theirs):
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= 1e-6


def test_collapse_and_compare_images_are_uint8_and_embed_as_the_float_ones(datamodule):
    images = fixed_test_images(datamodule, 5, seed=3)
    queries = datamodule.val_dataloader()[-1].dataset
    channels = 1 if isinstance(datamodule, DigitsDataModule) else 3
    assert images.dtype == torch.uint8 and images.shape == (5, channels, SIZE, SIZE)
    # The old recipe's images: the same choice, each image eval-transformed.
    old = torch.stack([queries.transform(queries.images[i]) for i in chosen(len(queries), 5, 3)])
    assert_close(datamodule.normalise(images), old)
    encoder, projector = model(channels)
    ours = embed(encoder, projector, images, batch_size=2, normalise=datamodule.normalise)
    theirs = embed(encoder, projector, old, batch_size=2)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b)
    assert encoder.training and projector.training  # modes restored


def test_class_geometry_images_are_uint8_and_embed_as_the_float_ones(datamodule):
    images, labels = images_per_class(datamodule, 3, seed=1)
    queries = datamodule.val_dataloader()[1].dataset
    assert images.dtype == torch.uint8 and len(images) == len(labels)
    # The old recipe: up to 3 of each class in a seeded order, then in the split's order.
    order = torch.randperm(len(queries.labels), generator=torch.Generator().manual_seed(1))
    by_order = torch.as_tensor(queries.labels)[order]
    keep = torch.cat([order[by_order == c][:3] for c in by_order.unique().tolist()]).sort().values
    old = torch.stack([queries.transform(queries.images[i]) for i in keep.tolist()])
    assert torch.equal(labels, torch.as_tensor(queries.labels)[keep])
    assert_close(datamodule.normalise(images), old)
    encoder, projector = model(images.shape[1])
    _, ours = embed(encoder, projector, images, normalise=datamodule.normalise)
    _, theirs = embed(encoder, projector, old)
    assert_close(ours, theirs)


def test_orbit_anchors_are_uint8_and_the_orbits_embed_as_before(datamodule):
    orbits = orbits_of_test_split(datamodule, 6, 3, seed=0)
    queries = datamodule.val_dataloader()[-1].dataset
    assert orbits.anchors.dtype == torch.uint8 and orbits.views.dtype == torch.float32
    assert torch.equal(orbits.anchors, queries.images[orbits.indices])
    assert not torch.equal(orbits.views[:, 0], orbits.views[:, 1])  # augmented, float
    encoder, projector = model(orbits.anchors.shape[1])
    ours = embed_orbits(encoder, projector, orbits, batch_size=4, normalise=datamodule.normalise)
    # The old path: float anchors (eval transform) and views in one tensor, embedded together.
    old = torch.cat([transformed(datamodule, orbits.anchors), orbits.views.flatten(0, 1)])
    h, z = embed(encoder, projector, old, batch_size=4)
    for space, every in (("encoder", h), ("projector", z)):
        anchors, views = ours[space]  # (A, d), (A, K, d)
        assert_close(anchors, every[:6])
        assert_close(views, every[6:].unflatten(0, (6, 3)))


def test_uint8_images_without_normalise_are_refused_and_the_model_left_as_it_was():
    datamodule = DigitsDataModule(num_workers=0)
    datamodule.setup()
    images = fixed_test_images(datamodule, 4)
    orbits = orbits_of_test_split(datamodule, 4, 2)
    encoder, projector = model(1)
    message = r"images of shape \(4, 1, 8, 8\) are uint8 and normalise=None"
    with pytest.raises(ValueError, match=message):
        embed(encoder, projector, images)
    with pytest.raises(ValueError, match=message):
        embed_orbits(encoder, projector, orbits)
    with pytest.raises(ValueError, match=message):  # a later batch: modes restored all the same
        embed_batches(encoder, projector, [transformed(datamodule, images), images])
    assert encoder.training and all(m.training for m in encoder.modules())


def test_the_gpu_check_of_the_fixed_images_runs_on_the_cpu():
    """tests/gpu runs it on CUDA (uint8 across, no host sync); here its path cannot rot."""
    assert gpu_checks.fixed_images_embed_on_device("cpu") <= 1e-6

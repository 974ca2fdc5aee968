"""Orbits to measure: fixed test images with K augmented views each, and their embeddings.

The same `seed` gives the same images and the same views, so a callback sees one fixed set at
every validation and `orbitcl.analyze` compares different checkpoints on identical inputs.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from orbitcl.checks.numbers import require_int


@dataclass
class Orbits:
    """A images with K views each, ready for the model (transformed, float)."""

    anchors: Tensor  # (A, C, H, W): the images themselves, eval transform (no augmentation)
    views: Tensor  # (A, K, C, H, W): K independent draws of the training augmentation
    labels: Tensor  # (A,)
    indices: Tensor  # (A,): positions of the images in the split they came from


def sample_orbits(
    images: Tensor,
    labels: Tensor,
    n_anchors: int,
    n_views: int,
    view_transform: Callable[[Tensor], Tensor],
    anchor_transform: Callable[[Tensor], Tensor],
    seed: int = 0,
    batch_transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
) -> Orbits:
    """Picks `n_anchors` of `images` (uint8 (N, C, H, W)) at random and draws `n_views` views of
    each with `view_transform` (a datamodule's `train_transform`), or with `batch_transform`
    (uint8 (B, C, H, W) and a generator -> one view float (B, C, H, W) of each: a datamodule's
    `augment_batch`) if given: the same distribution (tests/data/test_batch_augment.py), tens of
    times faster on a CPU, other draws.

    Everything is drawn from `seed`, and the global RNG is left as it was: the torchvision
    transforms draw from it, and training must not depend on whether diagnostics ran.
    """
    require_int("n_anchors", n_anchors, 1)
    require_int("n_views", n_views, 1)
    n_anchors = min(n_anchors, len(images))
    generator = torch.Generator().manual_seed(seed)
    # Sorted, so anchors keep the split's order (and with n_anchors = N, are the split).
    indices = torch.randperm(len(images), generator=generator)[:n_anchors].sort().values
    if batch_transform is not None:
        chosen = images[indices]
        anchors = torch.stack([anchor_transform(image) for image in chosen])
        views = batch_transform(chosen.repeat(n_views, 1, 1, 1), generator)  # (K * A, ...)
        views = views.unflatten(0, (n_views, n_anchors)).transpose(0, 1)  # (A, K, C, H, W)
        return Orbits(anchors, views.contiguous(), labels[indices], indices)
    threads = torch.get_num_threads()
    # One thread: on a single small image, handing each op to a thread pool costs more than the
    # op (10x slower with 2 threads on MNIST), which is also why DataLoader workers use one.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            chosen = images[indices]
            anchors = torch.stack([anchor_transform(image) for image in chosen])
            views = torch.stack(
                [torch.stack([view_transform(image) for _ in range(n_views)]) for image in chosen]
            )  # (A, K, C, H, W)
    finally:
        torch.set_num_threads(threads)
    return Orbits(anchors, views, labels[indices], indices)


def orbits_of_test_split(datamodule, n_anchors: int, n_views: int, seed: int = 0) -> Orbits:
    """Orbits of a set-up `MultiViewDataModule`'s test split: the images its validation queries
    loader serves (the last of [bank, queries]; without labels the only one), views from its
    `train_transform`. The one recipe the callbacks and `orbitcl.analyze` share, so their numbers
    agree."""
    queries = datamodule.val_dataloader()[-1].dataset  # ImageDataset of the test split
    return sample_orbits(
        queries.images,
        queries.labels,
        n_anchors,
        n_views,
        view_transform=datamodule.train_transform,
        anchor_transform=queries.transform,  # the eval transform
        seed=seed,
    )


def fixed_test_images(datamodule, n_images: int, seed: int = 0) -> Tensor:
    """`n_images` test images of a `MultiViewDataModule` (all if fewer; set up here), chosen by a
    permutation seeded with `seed`, in the split's order, eval transform: (B, C, H, W). The
    images `orbitcl.compare` and the study report's CKA embed with every run."""
    datamodule.setup()
    queries = datamodule.val_dataloader()[-1].dataset  # the test split
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(queries), generator=generator)[:n_images].sort().values
    return torch.stack([queries.transform(queries.images[i]) for i in chosen.tolist()])


@torch.no_grad()
def embed_batches(
    encoder: nn.Module, projector: nn.Module | None, batches: Iterable[Tensor]
) -> tuple[Tensor, Tensor | None]:
    """(encoder features (B, e), projector outputs (B, d)) of the images of every batch
    (b, C, H, W), concatenated, on CPU, float32 at least; no projector outputs (None) without a
    ``projector``. The model runs in eval mode (BatchNorm's running statistics), its modes
    restored after. The one feature extraction of orbitcl: the diagnostics, `embed`, and the
    downstream evaluation (``experiments.downstream.encode``) all call it."""
    heads = [] if projector is None else [projector]
    modes = [(m, m.training) for net in (encoder, *heads) for m in net.modules()]
    for net in (encoder, *heads):
        net.eval()
    device = next(encoder.parameters()).device
    features, projections = [], []
    try:
        for batch in batches:
            h = encoder(batch.to(device))
            features.append(h.float().cpu())
            if projector is not None:
                projections.append(projector(h).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(features), (torch.cat(projections) if projector is not None else None)


def embed(
    encoder: nn.Module, projector: nn.Module, images: Tensor, batch_size: int = 1024
) -> tuple[Tensor, Tensor]:
    """(encoder features (B, e), projector outputs (B, d)) of images (B, C, H, W), on CPU, with
    the model in eval mode (BatchNorm's running statistics) and its modes restored after."""
    return embed_batches(encoder, projector, images.split(batch_size))


def embed_orbits(
    encoder: nn.Module, projector: nn.Module, orbits: Orbits, batch_size: int = 1024
) -> dict[str, tuple[Tensor, Tensor]]:
    """Space name ("projector", "encoder") -> (anchor embeddings (A, d), view embeddings
    (A, K, d)) of `orbits`."""
    a, k = orbits.views.shape[:2]
    images = torch.cat([orbits.anchors, orbits.views.flatten(0, 1)])  # (A + A*K, C, H, W)
    features, projections = embed(encoder, projector, images, batch_size)
    return {
        space: (z[:a], z[a:].unflatten(0, (a, k)))  # (A, d), (A*K, d) -> (A, K, d)
        for space, z in (("projector", projections), ("encoder", features))
    }

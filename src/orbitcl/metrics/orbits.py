"""Orbits to measure: fixed test images with K augmented views each, and their embeddings.

The same `seed` gives the same images and the same views, so a callback sees one fixed set at
every validation and `orbitcl.analyze` compares different checkpoints on identical inputs.
The fixed images are held as the split holds them, uint8, and normalised on the model's device
batch by batch when embedded (`embed_batches`' `normalise`: a datamodule's `normalise`, the eval
transform of a batch), as the validation loaders' batches are: a quarter of float32's bytes to
keep and to copy at every validation.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from orbitcl.checks.numbers import require_int


@dataclass
class Orbits:
    """A images with K views each: the images as the split holds them (uint8, normalised when
    embedded: `embed_orbits`), their views ready for the model (augmented, float)."""

    anchors: Tensor  # uint8 (A, C, H, W): the images themselves, not augmented nor normalised
    views: Tensor  # float (A, K, C, H, W): K independent draws of the training augmentation
    labels: Tensor  # (A,)
    indices: Tensor  # (A,): positions of the images in the split they came from


def sample_orbits(
    images: Tensor,
    labels: Tensor,
    n_anchors: int,
    n_views: int,
    view_transform: Callable[[Tensor], Tensor],
    seed: int = 0,
    batch_transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
) -> Orbits:
    """Picks `n_anchors` of `images` (uint8 (N, C, H, W)) at random and draws `n_views` views of
    each with `view_transform` (a datamodule's `train_transform`), or with `batch_transform`
    (uint8 (B, C, H, W) and a generator -> one view float (B, C, H, W) of each: a datamodule's
    `augment_batch`) if given: the same distribution (tests/data/test_batch_augment.py), tens of
    times faster on a CPU, other draws. The anchors are the chosen images themselves, uint8.

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
        anchors = images[indices]  # uint8 (A, C, H, W); image files: decoded here
        views = batch_transform(anchors.repeat(n_views, 1, 1, 1), generator)  # (K * A, ...)
        views = views.unflatten(0, (n_views, n_anchors)).transpose(0, 1)  # (A, K, C, H, W)
        return Orbits(anchors, views.contiguous(), labels[indices], indices)
    threads = torch.get_num_threads()
    # One thread: on a single small image, handing each op to a thread pool costs more than the
    # op (10x slower with 2 threads on MNIST), which is also why DataLoader workers use one.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            anchors = images[indices]  # uint8 (A, C, H, W); image files: decoded here
            views = torch.stack(
                [torch.stack([view_transform(image) for _ in range(n_views)]) for image in anchors]
            )  # (A, K, C, H, W)
    finally:
        torch.set_num_threads(threads)
    return Orbits(anchors, views, labels[indices], indices)


def orbits_of_test_split(datamodule, n_anchors: int, n_views: int, seed: int = 0) -> Orbits:
    """Orbits of a set-up `MultiViewDataModule`'s test split: the images its validation queries
    loader serves (the last of [bank, queries]; without labels the only one), uint8, views from
    its `train_transform`; embed them with its `normalise`. The one recipe the callbacks and
    `orbitcl.analyze` share, so their numbers agree."""
    queries = datamodule.val_dataloader()[-1].dataset  # ImageDataset of the test split
    return sample_orbits(
        queries.images,
        queries.labels,
        n_anchors,
        n_views,
        view_transform=datamodule.train_transform,
        seed=seed,
    )


def fixed_test_images(datamodule, n_images: int, seed: int = 0) -> Tensor:
    """`n_images` test images of a `MultiViewDataModule` (all if fewer; set up here), chosen by a
    permutation seeded with `seed`, in the split's order, as the split holds them: uint8
    (B, C, H, W), to embed with its `normalise`. The images `orbitcl.compare` and the study
    report's CKA embed with every run."""
    datamodule.setup()
    queries = datamodule.val_dataloader()[-1].dataset  # the test split
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(queries), generator=generator)[:n_images].sort().values
    return queries.images[chosen]  # image files: decoded here


def require_normalise(images: Tensor, normalise: Callable[[Tensor], Tensor] | None) -> None:
    """Raises unless `images` are float or a `normalise` for uint8 ones is given (torch's own
    dtype error, deep in the model, would not say what is missing). Reads the dtype alone."""
    if images.dtype == torch.uint8 and normalise is None:
        raise ValueError(
            f"images of shape {tuple(images.shape)} are uint8 and normalise=None: uint8 images "
            "need normalise (a datamodule's `normalise`: its eval transform, run on the model's "
            "device); float images are taken as already transformed"
        )


@torch.no_grad()
def embed_batches(
    encoder: nn.Module,
    projector: nn.Module | None,
    batches: Iterable[Tensor],
    normalise: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """(encoder features (B, e), projector outputs (B, d)) of the images of every batch
    (b, C, H, W), concatenated, on CPU, float32 at least; no projector outputs (None) without a
    ``projector``. A uint8 batch is normalised by ``normalise`` (uint8 (b, C, H, W) -> float
    (b, C, H, W): a datamodule's ``normalise``) after its transfer to the model's device, a
    quarter of float32's bytes to copy; float batches are taken as transformed already; uint8
    without ``normalise`` is refused (ValueError). The model runs in eval mode (BatchNorm's
    running statistics), its modes restored after. The one feature extraction of orbitcl: the
    diagnostics, `embed`, and the downstream evaluation (``experiments.downstream.encode``) all
    call it."""
    heads = [] if projector is None else [projector]
    modes = [(m, m.training) for net in (encoder, *heads) for m in net.modules()]
    for net in (encoder, *heads):
        net.eval()
    device = next(encoder.parameters()).device
    features, projections = [], []
    try:
        for batch in batches:
            require_normalise(batch, normalise)  # dtype only: no sync
            # non_blocking: a pinned batch's copy overlaps the host's work (a no-op otherwise).
            batch = batch.to(device, non_blocking=True)
            h = encoder(normalise(batch) if batch.dtype == torch.uint8 else batch)
            features.append(h.float().cpu())
            if projector is not None:
                projections.append(projector(h).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(features), (torch.cat(projections) if projector is not None else None)


def embed(
    encoder: nn.Module,
    projector: nn.Module,
    images: Tensor,
    batch_size: int = 1024,
    normalise: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """(encoder features (B, e), projector outputs (B, d)) of images (B, C, H, W), on CPU, with
    the model in eval mode (BatchNorm's running statistics) and its modes restored after.
    uint8 images (the fixed images of `fixed_test_images`, `sample_orbits`' anchors) need
    ``normalise``, applied on the model's device batch by batch (`embed_batches`)."""
    require_normalise(images, normalise)  # before the model is touched
    return embed_batches(encoder, projector, images.split(batch_size), normalise)


def embed_orbits(
    encoder: nn.Module,
    projector: nn.Module,
    orbits: Orbits,
    batch_size: int = 1024,
    normalise: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Space name ("projector", "encoder") -> (anchor embeddings (A, d), view embeddings
    (A, K, d)) of `orbits`; ``normalise`` (a datamodule's) turns the uint8 anchors into what
    the model takes, on its device. One pass: the anchors' batches, then the views'."""
    require_normalise(orbits.anchors, normalise)
    a, k = orbits.views.shape[:2]
    batches = [*orbits.anchors.split(batch_size), *orbits.views.flatten(0, 1).split(batch_size)]
    features, projections = embed_batches(encoder, projector, batches, normalise)
    return {
        space: (z[:a], z[a:].unflatten(0, (a, k)))  # (A + A*K, d) -> (A, d), (A, K, d)
        for space, z in (("projector", projections), ("encoder", features))
    }

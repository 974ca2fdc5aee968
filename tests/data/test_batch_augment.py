"""The batched augmentation (orbitcl.data.batch_*): each op against torchvision's kernels with the
same parameters, parameter ranges, determinism, and the whole pipeline's statistics against the
per-sample torchvision pipeline it replaces."""

import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from orbitcl.data import load_cifar10, load_mnist
from orbitcl.data.batched import augment as augment_module
from orbitcl.data.batched.augment import BatchAugment, Step
from orbitcl.data.batched.colour import (
    ColorJitter,
    GaussianBlur,
    Grayscale,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)
from orbitcl.data.batched.geometry import Affine, HorizontalFlip, ResizedCrop, compose, resample
from orbitcl.data.batches import ImageBatch

DATA_DIR = Path(os.environ["ORBITCL_DATA_DIR"])
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "MNIST" / "raw").is_dir() or not (DATA_DIR / "cifar-10-batches-py").is_dir(),
    reason=f"no MNIST or CIFAR-10 in {DATA_DIR}",
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mnist(n: int) -> torch.Tensor:
    return load_mnist(DATA_DIR, train=True, download=False)[0][:n]


def cifar10(n: int) -> torch.Tensor:
    return load_cifar10(DATA_DIR, train=True, download=False)[0][:n]


def random_rgb(n: int = 16, size: int = 12) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=generator(1))


def all_active(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


def warp_one(op, images: torch.Tensor, params: dict) -> torch.Tensor:
    sizes = [tuple(images.shape[-2:]), op.out_size(tuple(images.shape[-2:]))]
    return resample(images, *compose([op], [params], sizes), sizes[-1])


# --- geometry ---------------------------------------------------------------------------------


def test_crops_stay_inside_the_image_with_area_and_ratio_in_range():
    op = ResizedCrop((28, 28), scale=(0.4, 1.0), ratio=(0.8, 1.25))
    n, (height, width) = 20000, (28, 30)
    p = op.sample(n, (height, width), all_active(n), generator())
    top, left, h, w = p["top"], p["left"], p["height"], p["width"]
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    assert torch.equal(top, top.round()) and torch.equal(h, h.round())  # whole pixels
    # Area and ratio as drawn, up to rounding the sides to whole pixels (+-0.5 each).
    area = h * w / (height * width)
    # Sides are >= sqrt(0.4 * 28 * 30 * 0.8) > 16 px before rounding: each within 0.5 / 16.
    slack = 1 - 0.5 / 16
    assert area.min() >= 0.4 * slack**2 and area.max() <= 1
    ratio = w / h
    assert ratio.min() >= 0.8 * slack**2 and ratio.max() <= 1.25 / slack**2
    # Every position a crop can take is taken: top is uniform over 0 .. height - h.
    assert (top == 0).any() and (top == height - h).any()


def test_crop_parameters_follow_torchvision_distribution():
    torch.manual_seed(0)
    reference = v2.RandomResizedCrop(28, scale=(0.2, 1.0))
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    boxes = [reference.make_params([image]) for _ in range(4000)]
    ref_area = torch.tensor([b["height"] * b["width"] / 784 for b in boxes])
    ref_top = torch.tensor([float(b["top"]) for b in boxes])
    op = ResizedCrop((28, 28), scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3))
    p = op.sample(4000, (28, 28), all_active(4000), generator())
    area = p["height"] * p["width"] / 784
    # Means of 4000 draws: standard errors ~0.004 (area) and ~0.1 px (top).
    assert abs(area.mean() - ref_area.mean()) < 0.02
    assert abs(area.std() - ref_area.std()) < 0.02
    assert abs(p["top"].mean() - ref_top.mean()) < 0.5


def test_crop_falls_back_to_torchvisions_central_crop():
    # A 2:1 to 3:1 crop of the whole area never fits a square image: the central crop of ratio 2.
    op = ResizedCrop((10, 10), scale=(1.0, 1.0), ratio=(2.0, 3.0))
    p = op.sample(5, (10, 10), all_active(5), generator())
    assert p["width"].eq(10).all() and p["height"].eq(5).all()
    assert p["top"].eq(2).all() and p["left"].eq(0).all()
    torch.manual_seed(0)
    reference = v2.RandomResizedCrop(10, scale=(1.0, 1.0), ratio=(2.0, 3.0))
    box = reference.make_params([torch.zeros(1, 10, 10)])
    assert (box["top"], box["left"], box["height"], box["width"]) == (2, 0, 5, 10)


def test_crop_resampling_equals_torchvision_resized_crop():
    images = random_rgb(8, 16)
    op = ResizedCrop((16, 16), scale=(0.1, 1.0), ratio=(0.5, 2.0))
    p = op.sample(8, (16, 16), all_active(8), generator())
    out = warp_one(op, images, p)
    for i in range(8):
        box = [int(p[k][i]) for k in ("top", "left", "height", "width")]
        expected = TF.resized_crop(images[i], *box, size=[16, 16], antialias=True)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-5)


def test_identity_parameters_give_the_input_back_exactly():
    images = mnist(64) if (DATA_DIR / "MNIST" / "raw").is_dir() else (random_rgb(64) * 255).byte()
    augment = BatchAugment.from_torchvision(
        v2.Compose(
            [
                v2.RandomResizedCrop(images.shape[-1], scale=(1.0, 1.0), ratio=(1.0, 1.0)),
                v2.RandomAffine(degrees=0),
                v2.RandomHorizontalFlip(p=0.0),
                v2.RandomGrayscale(p=0.0),
            ]
        )
    )
    out = augment(images, generator())
    torch.testing.assert_close(out, images / 255, rtol=0, atol=1e-5)
    assert torch.equal((out * 255).round().byte(), images)


def test_horizontal_flip_mirrors_with_probability_p():
    images = random_rgb(400, 6)
    op = HorizontalFlip(p=0.3)
    p = op.sample(400, (6, 6), all_active(400), generator())
    out = warp_one(op, images, p)
    flipped = p["flip"]
    expected = TF.horizontal_flip(images[flipped])  # up to grid_sample's coordinate rounding
    torch.testing.assert_close(out[flipped], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[~flipped], images[~flipped], rtol=0, atol=1e-6)
    assert abs(flipped.float().mean() - 0.3) < 3 * math.sqrt(0.3 * 0.7 / 400)


def affine_params(angle: float, tx: float, ty: float, shear: float = 0.0) -> dict:
    """Parameters as Affine.sample makes them, for fixed values (degrees, pixels)."""

    op = Affine(degrees=(angle, angle), translate=None, shear=(shear, shear))
    params = op.sample(1, (9, 9), all_active(1), generator())
    # Translation enters the inverse map as -(M tx); rebuild it for the wanted (tx, ty).
    m0, m1, m3, m4 = (params[f"m{i}"] for i in (0, 1, 3, 4))
    params["m2"], params["m5"] = -(m0 * tx + m1 * ty), -(m3 * tx + m4 * ty)
    return params


@pytest.mark.parametrize("angle,tx,ty", [(0, 2, -1), (90, 0, 0), (-90, 1, 2), (180, -3, 0)])
def test_affine_matches_torchvision_where_pixels_map_to_pixel_centres(angle, tx, ty):
    # Rotations by multiples of 90 degrees and whole-pixel shifts hit pixel centres exactly, so
    # bilinear and torchvision's nearest sampling agree, fill included.
    image = (torch.rand(1, 2, 9, 9, generator=generator(2)) * 255).round() / 255
    out = warp_one(Affine(degrees=(0, 0)), image, affine_params(angle, tx, ty))
    expected = TF.affine(image[0], angle=angle, translate=[tx, ty], scale=1.0, shear=[0.0, 0.0])
    torch.testing.assert_close(out[0], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("angle,shear", [(12.0, 0.0), (-7.0, 9.0), (0.0, -10.0)])
def test_affine_matches_torchvision_bilinear_inside_the_image(angle, shear):
    image = torch.rand(1, 1, 9, 9, generator=generator(3))
    out = warp_one(Affine(degrees=(0, 0)), image, affine_params(angle, 1, 0, shear))
    expected = TF.affine(
        image[0], angle=angle, translate=[1, 0], scale=1.0, shear=[shear, 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )  # fmt: skip
    # The centre maps well inside the image, away from torchvision's soft-masked border.
    torch.testing.assert_close(out[0, :, 2:7, 2:7], expected[:, 2:7, 2:7], rtol=0, atol=1e-5)


def test_affine_parameters_in_range_and_translation_in_whole_pixels():
    op = Affine(degrees=(-15, 15), translate=(0.1, 0.1), shear=(-10, 10))
    n = 5000
    p = op.sample(n, (28, 28), all_active(n), generator())
    # The inverse map has det 1 (rotation and shear only); its translation part, mapped back,
    # is the forward translation: whole pixels within +-0.1 * 28.
    m = torch.stack([p["m0"], p["m1"], p["m3"], p["m4"]], 1).view(n, 2, 2)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(n, dtype=torch.float64))
    t = -torch.linalg.solve(m, torch.stack([p["m2"], p["m5"]], 1))  # (n, 2)
    torch.testing.assert_close(t, t.round(), rtol=0, atol=1e-9)
    assert t.abs().max() <= 3 + 1e-9 and ((t.abs() - 3).abs() < 1e-9).any()
    # Without a y shear, the inverse map's second row is (-sin, cos) of the angle.
    angle = torch.atan2(-p["m3"], p["m4"]).rad2deg().abs()
    assert angle.max() <= 15 + 1e-9 and angle.max() > 14.9


@pytest.mark.parametrize("angle,tx,ty", [(0, 3, -2), (90, 1, 0), (180, 0, 0)])
def test_crop_then_affine_equals_torchvision_in_sequence(angle, tx, ty):
    # One resampling of the composed map gives what torchvision gives in two steps: the
    # resized crop, then the affine map (at pixel centres, where nearest and bilinear agree),
    # filling with 0 what comes from outside the crop's output, never pixels beside the crop.
    images = torch.rand(6, 2, 12, 12, generator=generator(6)) + 1  # no zeros of its own
    crop = ResizedCrop((12, 12), scale=(0.2, 0.6), ratio=(0.75, 1.33))
    crop_params = crop.sample(6, (12, 12), all_active(6), generator())
    affine_params_ = {k: v.expand(6) for k, v in affine_params(angle, tx, ty).items()}
    ops, sizes = [crop, Affine(degrees=(0, 0))], [(12, 12)] * 3
    out = resample(images, *compose(ops, [crop_params, affine_params_], sizes), (12, 12))
    for i in range(6):
        box = [int(crop_params[k][i]) for k in ("top", "left", "height", "width")]
        cropped = TF.resized_crop(images[i], *box, size=[12, 12], antialias=True)
        expected = TF.affine(cropped, angle=angle, translate=[tx, ty], scale=1.0, shear=[0.0, 0.0])
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-5)
    assert (out == 0).any() == (tx != 0 or ty != 0)


def test_geometric_order_must_be_crop_first_and_one_affine():
    for transforms in (
        [v2.RandomAffine(10), v2.RandomResizedCrop(8)],
        [v2.RandomResizedCrop(8), v2.RandomAffine(10), v2.RandomAffine(5)],
    ):
        with pytest.raises(ValueError, match=r"^pipeline='batched' is invalid for this augment"):
            BatchAugment.from_torchvision(v2.Compose(transforms))
    # Colour in between starts a new resampling, so a second affine map is fine there.
    BatchAugment.from_torchvision(
        v2.Compose([v2.RandomAffine(10), v2.ColorJitter(0.4), v2.RandomAffine(5)])
    )


def test_affine_fills_outside_with_zero():
    image = torch.ones(1, 1, 8, 8)
    out = warp_one(Affine(degrees=(0, 0)), image, affine_params(0, 3, 0))
    assert out[0, 0, :, :3].eq(0).all() and out[0, 0, :, 3:].eq(1).all()


# --- colour -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours,theirs,low,high",
    [
        (adjust_brightness, TF.adjust_brightness, 0.5, 1.5),
        (adjust_contrast, TF.adjust_contrast, 0.5, 1.5),
        (adjust_saturation, TF.adjust_saturation, 0.0, 2.0),
        (adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_colour_adjustments_match_torchvision(ours, theirs, low, high, channels):
    images = random_rgb(32, 10)[:, :channels]
    if channels == 3:  # grey pixels and saturated ones: the hue's special cases
        images[0] = images[0, :1]
        images[1, 0] = 1.0
    factors = torch.empty(32).uniform_(low, high, generator=generator(4))
    out = ours(images.clone(), factors)
    expected = torch.stack([theirs(img, float(f)) for img, f in zip(images, factors, strict=True)])
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-6)


def test_identity_factors_leave_images_unchanged():
    images = random_rgb()
    ones = torch.ones(len(images))
    for fn in (adjust_brightness, adjust_contrast, adjust_saturation):
        assert torch.equal(fn(images.clone(), ones), images)
    torch.testing.assert_close(adjust_hue(images, 0 * ones), images, rtol=0, atol=1e-6)


def test_grayscale_matches_torchvision_with_probability_p():
    images = random_rgb(1000, 4)
    op = Grayscale(p=0.2)
    p = op.sample(1000, all_active(1000), generator())
    out = op.apply(images.clone(), p)
    index = p["index"]
    expected = TF.rgb_to_grayscale(images[index], num_output_channels=3)
    torch.testing.assert_close(out[index], expected, rtol=0, atol=1e-6)
    untouched = torch.ones(1000, dtype=torch.bool).index_fill(0, index, False)
    assert torch.equal(out[untouched], images[untouched])
    assert abs(len(index) / 1000 - 0.2) < 3 * math.sqrt(0.2 * 0.8 / 1000)


def test_gaussian_blur_matches_torchvision_sigma_in_range():
    images = random_rgb(64, 9)
    op = GaussianBlur(kernel_size=3, sigma=(0.1, 1.0))
    p = op.sample(64, all_active(64), generator())
    out = op.apply(images.clone(), p)
    sigma = torch.empty(64).uniform_(0.1, 1.0, generator=generator())  # the same draws
    for i in range(64):
        expected = TF.gaussian_blur(images[i], [3, 3], [float(sigma[i])] * 2)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-6)
    # Kernels of sigma in [0.1, 1]: centre weight between 1 / (1 + 2 e^-1/2) and 1.
    centre = p["weights"][:, 1]
    assert centre.min() >= 1 / (1 + 2 * math.exp(-0.5)) - 1e-6 and centre.max() <= 1


def test_color_jitter_applies_each_adjustment_once_in_the_sampled_order():
    images = random_rgb(200, 6)
    op = ColorJitter(
        brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.6, 1.4), hue=(-0.1, 0.1)
    )
    active = torch.rand(200, generator=generator(5)) < 0.8
    p = op.sample(200, active, generator())
    out = op.apply(images.clone(), p)
    theirs = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    orders = set()
    for i in range(200):
        expected, order = images[i], []
        for position in range(4):
            for j in range(4):
                index = p[f"index{position}{j}"].tolist()
                if i in index:
                    factor = float(p[f"factor{position}{j}"][index.index(i)])
                    expected, order = theirs[j](expected, factor), [*order, j]
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-5)
        if active[i]:
            assert sorted(order) == [0, 1, 2, 3]  # each once
            orders.add(tuple(order))
            for position, j in enumerate(order):  # factors within their ranges
                index = p[f"index{position}{j}"].tolist().index(i)
                factor = float(p[f"factor{position}{j}"][index])
                assert (-0.1 <= factor <= 0.1) if j == 3 else (0.6 <= factor <= 1.4)
        else:
            assert order == [] and torch.equal(out[i], images[i])
    assert len(orders) > 12  # of the 24 orders, with ~160 jittered images


# --- the whole pipeline -----------------------------------------------------------------------


def test_random_apply_gates_open_with_their_probability():
    images = torch.full((2000, 1, 4, 4), 100, dtype=torch.uint8)
    augment = BatchAugment.from_torchvision(
        v2.RandomApply([v2.ColorJitter(brightness=(2.0, 2.0))], p=0.3)
    )
    out = augment(images, generator())
    doubled = out[:, 0, 0, 0] > 0.5
    assert torch.equal(out[doubled], torch.full_like(out[doubled], 200 / 255))
    assert torch.equal(out[~doubled], torch.full_like(out[~doubled], 100 / 255))
    assert abs(doubled.float().mean() - 0.3) < 3 * math.sqrt(0.3 * 0.7 / 2000)


def test_nested_gates_open_together():
    augment = BatchAugment.from_torchvision(
        v2.RandomApply(
            [v2.RandomGrayscale(p=1.0), v2.RandomApply([v2.RandomAffine(0)], p=0.5)], p=0.4
        )
    )
    assert augment.gate_probs.tolist() == [0.4, 0.5]
    assert [step.gates for step in augment.steps] == [(0,), (0, 1)]


def test_unsupported_transforms_are_rejected_naming_them():
    with pytest.raises(ValueError, match=r"^pipeline='batched' is invalid .*RandomRotation"):
        BatchAugment.from_torchvision(v2.Compose([v2.RandomRotation(10)]))
    with pytest.raises(ValueError, match="bilinear interpolation"):
        BatchAugment.from_torchvision(
            v2.RandomResizedCrop(8, interpolation=InterpolationMode.NEAREST)
        )


def test_same_generator_state_same_views_and_shapes():
    images = (random_rgb(32, 8) * 255).byte()
    augment = BatchAugment.from_torchvision(
        v2.Compose(
            [v2.RandomResizedCrop(6), v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4, 0.1)]
        )
    )
    a, b, c = (augment(images, generator(seed)) for seed in (7, 7, 8))
    assert a.shape == (32, 3, 6, 6) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def config_datamodule(train_config, name: str, **overrides):
    config = train_config(f"dataset={name}", "dataset.pipeline=batched").dataset
    datamodule = instantiate(config, num_workers=0, **overrides)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


@needs_data
@pytest.mark.parametrize("name", ["digits", "mnist", "cifar10"])
def test_batched_datamodule_serves_uint8_batches_and_seeded_views(name, train_config):
    datamodule = config_datamodule(train_config, name, batch_size=16, n_views=3)
    loader = datamodule.train_dataloader()
    batches = iter(loader)
    first, second = next(batches), next(batches)
    assert isinstance(first, ImageBatch) and (first.index, second.index) == (0, 1)
    assert first.images.dtype == torch.uint8 and first.labels.shape == (16,)
    datamodule.trainer = SimpleNamespace(current_epoch=2, global_rank=0, accelerator=None)
    views, labels = datamodule.on_after_batch_transfer(first, 0)
    size = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[name]
    assert len(views) == 3 and all(
        v.shape == (16, *size) and v.dtype == torch.float32 for v in views
    )
    assert torch.equal(labels, first.labels) and not torch.equal(views[0], views[1])
    # The views are a function of (seed, epoch, rank, batch index): replayed exactly, and changed
    # by each of them.
    again, _ = datamodule.on_after_batch_transfer(first, 0)
    assert all(torch.equal(a, b) for a, b in zip(views, again, strict=True))
    for epoch, rank, index in [(3, 0, 0), (2, 1, 0), (2, 0, 1)]:
        datamodule.trainer = SimpleNamespace(
            current_epoch=epoch, global_rank=rank, accelerator=None
        )
        other, _ = datamodule.on_after_batch_transfer(first._replace(index=index), 0)
        assert not torch.equal(other[0], views[0])
    # Eval batches (images, labels) pass through.
    images, labels = next(iter(datamodule.val_dataloader()[1]))
    assert datamodule.on_after_batch_transfer((images, labels), 0)[0] is images


@needs_data
@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_batched_views_statistics_match_the_per_sample_pipeline(name, train_config):
    """Views of the same 100 images, 20 each, from both pipelines: the same pixel statistics
    per channel, and mean images (over each image's 20 views) that differ no more than those of
    two seeds of the per-sample pipeline do."""
    datamodule = config_datamodule(train_config, name)
    images = (mnist if name == "mnist" else cifar10)(100).repeat(10, 1, 1, 1)  # (1000, C, H, W)

    def per_sample_views(seed: int) -> torch.Tensor:  # (2000, C, H, W): views 0 then 1
        torch.manual_seed(seed)
        return torch.stack([datamodule.train_transform(x) for x in images.repeat(2, 1, 1, 1)])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker: threads only slow single images down
    try:
        per_sample, per_sample_again = per_sample_views(0), per_sample_views(1)
    finally:
        torch.set_num_threads(threads)
    batched = torch.cat(datamodule.batch_views(images, generator()))  # (2000, C, H, W)
    dims = (0, 2, 3)  # per channel; normalised pixels: mean ~0, spread ~1
    # Seed-to-seed, the per-sample pipeline's channel means move by up to ~0.02, stds by ~2%.
    torch.testing.assert_close(batched.mean(dims), per_sample.mean(dims), rtol=0, atol=0.03)
    torch.testing.assert_close(batched.std(dims), per_sample.std(dims), rtol=0.03, atol=0)

    def mean_images(views: torch.Tensor) -> torch.Tensor:  # (100, C, H, W)
        return views.view(20, 100, *views.shape[1:]).mean(0)

    difference = (mean_images(batched) - mean_images(per_sample)).abs().mean()
    noise = (mean_images(per_sample_again) - mean_images(per_sample)).abs().mean()
    assert difference < 1.15 * noise
    if name == "cifar10":  # grayscale with probability 0.2: channels equal
        mean, std = datamodule._mean_std
        unnormalised = batched * std + mean
        grey = (unnormalised.amax(1) - unnormalised.amin(1)).flatten(1).amax(1) < 1e-5
        assert abs(grey.float().mean() - 0.2) < 3 * math.sqrt(0.2 * 0.8 / 2000)


def test_pipeline_must_be_batched_or_per_sample():
    from orbitcl.data import DigitsDataModule

    with pytest.raises(ValueError, match=r"^pipeline='fast' is invalid: must be"):
        DigitsDataModule(pipeline="fast")


def test_steps_hold_their_ops():  # the public pieces compose by hand too
    augment = BatchAugment([Step(Grayscale(p=1.0))])
    out = augment((random_rgb(4, 3) * 255).byte(), generator())
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


# --- exact resume -----------------------------------------------------------------------------


def test_killed_batched_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """tests/training/test_resume.py's check for the batched pipeline, whose augmentations come from
    (seed, epoch, rank, batch index) rather than from the global RNG."""
    import signal
    import subprocess
    import sys
    import time

    def command(run_dir):
        return [
            sys.executable, "-m", "orbitcl.train", "dataset.pipeline=batched",
            "trainer.max_epochs=3", "logger=csv", "callbacks.umap=null", "callbacks.orbit=null",
            "callbacks.class_geometry=null", "callbacks.spectrum=null",
            "callbacks.tension=null", "callbacks.similarity=null", f"hydra.run.dir={run_dir}",
        ]  # fmt: skip

    env = {**os.environ, "WANDB_MODE": "offline"}
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    subprocess.run(command(uninterrupted), env=env, check=True, capture_output=True)
    process = subprocess.Popen(
        command(resumed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not (resumed / "checkpoints" / "last.ckpt").is_file():  # an epoch is saved
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] < 2
    result = subprocess.run(command(resumed), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout + result.stderr

    a = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert (
        a["global_step"] == b["global_step"] > 0
        and a["state_dict"].keys() == b["state_dict"].keys()
    )
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)


# --- parameters to the device -----------------------------------------------------------------


def test_packed_parameters_come_back_exactly():
    floats = torch.randn(5, 2, 3)
    floats[0, 0, 0] = float("nan")  # bit patterns, whatever the value
    indices = torch.tensor([0, 7, 2**31 - 1])
    empty = torch.empty(0, dtype=torch.int64)
    packed = augment_module.pack([floats, indices, empty])
    assert packed.dtype == torch.int32 and packed.shape == (30 + 3,)
    back = augment_module.unpack(packed, [floats, indices, empty])
    assert torch.equal(back[0].view(torch.int32), floats.view(torch.int32))
    assert back[1].dtype == torch.int64 and torch.equal(back[1], indices)
    assert back[2].shape == (0,) and back[2].dtype == torch.int64
    with pytest.raises(TypeError, match="float32 and int64"):
        augment_module.pack([torch.zeros(2, dtype=torch.float64)])


def test_parameters_are_drawn_first_and_moved_in_one_copy(monkeypatch):
    # The batch's parameters are drawn on the CPU before any op runs, in the order in which the
    # ops draw them one at a time (the reference below: sample, then apply, op by op), and
    # reach the device in one packed copy.
    steps = [
        Step(ResizedCrop((10, 10), (0.3, 1.0), (0.75, 1.33))),
        Step(HorizontalFlip(0.5)),
        Step(ColorJitter((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)), (0,)),
        Step(Affine((-15.0, 15.0), (0.1, 0.1), None, (-10.0, 10.0)), (1,)),
        Step(Grayscale(0.3)),
        Step(GaussianBlur(3, (0.1, 2.0)), (1,)),
    ]
    augment = BatchAugment(steps, [0.8, 0.5])
    images = (random_rgb(24, 12) * 255).byte()
    copies = []
    to_device = augment_module.to_device
    monkeypatch.setattr(
        augment_module, "to_device", lambda ts, d: copies.append(len(ts)) or to_device(ts, d)
    )
    ours = augment(images, generator(5))
    # One packed copy per batch: two resamplings' theta and box, the jitter's 4 x 4 indices and
    # factors, grayscale's indices, the blur's indices and weights.
    assert copies == [2 * 2 + 2 * 16 + 1 + 2]

    g = generator(5)
    n = len(images)
    opened = torch.rand(n, 2, generator=g, dtype=torch.float64) < augment.gate_probs
    x, run, sizes = images.float() / 255, [], [(12, 12)]
    for step in [*steps, None]:
        if step is not None and isinstance(step.op, ResizedCrop | HorizontalFlip | Affine):
            active = opened[:, list(step.gates)].all(1)
            run.append((step.op, step.op.sample(n, sizes[-1], active, g)))
            sizes.append(step.op.out_size(sizes[-1]))
            continue
        if run:
            ops, params = zip(*run, strict=True)
            x = resample(x, *compose(list(ops), list(params), sizes), sizes[-1])
            run, sizes = [], sizes[-1:]
        if step is not None:
            x = step.op.apply(x, step.op.sample(n, opened[:, list(step.gates)].all(1), g))
    assert torch.equal(ours, x)

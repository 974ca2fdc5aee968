"""Image folders: layouts, labels, the held-out split, decoding, unreadable files, bad values, and
the channel statistics for `dataset.mean` / `dataset.std`."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data_files import write_image_folder
from PIL import Image
from torch.utils.data import DataLoader

from orbitcl.data import NO_LABEL, DataNotFoundError, ImageFolderDataModule, load_mnist
from orbitcl.data.folders import ImageFiles, held_out
from orbitcl.data.stats import channel_statistics
from orbitcl.data.stats import main as stats_main
from orbitcl.data.views import ImageDataset

RGB = {"mean": [0.5] * 3, "std": [0.5] * 3}


def folder_module(root, **kwargs) -> ImageFolderDataModule:
    datamodule = ImageFolderDataModule(root, image_size=16, num_workers=0, **RGB, **kwargs)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def paths_and_labels(split) -> list[tuple[str, int]]:
    files, labels = split
    return list(zip(files.paths, labels.tolist(), strict=True))


def test_class_folders_give_labels_and_a_fixed_stratified_held_out_split(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=20, classes=("dog", "cat", "owl"))
    datamodule = folder_module(tmp_path / "pets", batch_size=8)
    assert datamodule.classes == ["cat", "dog", "owl"] and datamodule.num_classes == 3
    assert datamodule.missing_labels is None
    train, test = paths_and_labels(datamodule._train), paths_and_labels(datamodule._test)
    assert len(train) == 54 and len(test) == 6  # 10% of each class of 20
    assert sorted(train + test) == sorted(
        (str(p), ["cat", "dog", "owl"].index(p.parent.name))
        for p in (tmp_path / "pets").rglob("*.png")
    )
    assert sorted(label for _, label in test) == [0, 0, 1, 1, 2, 2]
    again = folder_module(tmp_path / "pets", batch_size=8)
    assert paths_and_labels(again._test) == test  # deterministic
    other = folder_module(tmp_path / "pets", batch_size=8, split_seed=1)
    assert paths_and_labels(other._test) != test
    bank, queries = datamodule.val_dataloader()
    assert len(bank.dataset) == 54 and len(queries.dataset) == 6


def test_train_and_test_folders_are_used_as_given(tmp_path):
    write_image_folder(tmp_path / "data" / "train", per_class=10)
    write_image_folder(tmp_path / "data" / "val", per_class=3, classes=("dog",), seed=1)
    datamodule = folder_module(tmp_path / "data", batch_size=8)
    assert datamodule.classes == ["cat", "dog"]
    assert len(datamodule._train[0]) == 20
    assert {(Path(p).parent.name, label) for p, label in paths_and_labels(datamodule._test)} == {
        ("dog", 1)
    }


def test_a_flat_folder_has_no_labels_and_no_knn_bank(tmp_path):
    write_image_folder(tmp_path / "flat", per_class=30, classes=())
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    datamodule = folder_module(tmp_path / "flat", batch_size=8)
    assert datamodule.num_classes == 0 and "flat folder" in datamodule.missing_labels
    assert len(datamodule._train[0]) == 27 and len(datamodule._test[0]) == 3
    assert set(datamodule._train[1].tolist()) == {NO_LABEL}
    (queries,) = datamodule.val_dataloader()  # only the queries: nothing for a bank to vote with
    views, labels = next(iter(datamodule.train_dataloader()))
    assert len(views) == 2 and views[0].shape == (8, 3, 16, 16) and set(labels.tolist()) == {-1}


def test_images_are_converted_resized_and_centre_cropped(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # height 20, width 40
    pixels[:, 10:30] = (255, 128, 0)  # the centre square 20x20, orange
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    rgb = ImageFiles([str(tmp_path / "wide.png")], size=10, channels=3)[0]
    assert rgb.shape == (3, 10, 10) and rgb.dtype == torch.uint8
    assert rgb[:, 1:-1, 1:-1].flatten(1).unique(dim=1).tolist() == [[255], [128], [0]]
    grey = ImageFiles([str(tmp_path / "wide.png")], size=10, channels=1)[torch.tensor([0, 0])]
    expected = round(0.299 * 255 + 0.587 * 128)  # PIL's luma ("L")
    assert grey.shape == (2, 1, 10, 10) and abs(int(grey[0, 0, 5, 5]) - expected) <= 1


@pytest.mark.parametrize("num_workers", [0, 1])
def test_an_unreadable_image_is_named(tmp_path, num_workers):
    write_image_folder(tmp_path / "pets", per_class=4)
    (tmp_path / "pets" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    files = ImageFiles(sorted(map(str, (tmp_path / "pets").rglob("*.png"))), 8, 3)
    dataset = ImageDataset(files, torch.zeros(len(files)), lambda image: image)
    with pytest.raises(DataNotFoundError) as error:
        list(DataLoader(dataset, batch_size=4, num_workers=num_workers))
    # From a worker too, the message is the file's, without the worker's traceback.
    assert str(error.value).startswith(f"{tmp_path / 'pets' / 'cat' / 'broken.png'} cannot be read")


def test_empty_and_too_small_folders_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no images in .*empty"):
        folder_module(tmp_path / "empty")
    write_image_folder(tmp_path / "few", per_class=5)
    with pytest.raises(DataNotFoundError, match=r"8 training images .*dataset.batch_size=256"):
        folder_module(tmp_path / "few")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"root": "/no/such/folder"}, "root='/no/such/folder' is invalid"),
        ({"root": None}, "root=None is invalid"),
        ({"channels": 2}, "channels=2 is invalid"),
        ({"channels": 1}, r"mean=\[0.5, 0.5, 0.5\] is invalid: must hold one value per channel"),
        ({"image_size": 0}, "image_size=0 is invalid"),
        ({"test_fraction": 0.0}, "test_fraction=0.0 is invalid"),
        ({"pipeline": "batched"}, "pipeline='batched' is invalid: an image folder"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(tmp_path, kwargs, message):
    kwargs = {"root": tmp_path, **RGB, **kwargs}
    with pytest.raises(ValueError, match=f"^{message}"):
        ImageFolderDataModule(**kwargs)


def test_channel_statistics_are_those_of_the_pixels(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=6)
    files = ImageFiles(sorted(map(str, (tmp_path / "pets").rglob("*.png"))), 12, 3)
    mean, std = channel_statistics(files, batch_size=5)
    pixels = files[range(len(files))].double().div(255).transpose(0, 1).flatten(1)  # (C, N*H*W)
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), pixels.mean(1))
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), pixels.std(1, correction=0))


@pytest.mark.skipif(
    not (Path(os.environ["ORBITCL_DATA_DIR"]) / "MNIST" / "raw").is_dir(), reason="no MNIST"
)
def test_channel_statistics_reproduce_the_mnist_config(train_config):
    images, _ = load_mnist(os.environ["ORBITCL_DATA_DIR"], train=True, download=False)
    mean, std = channel_statistics(images, batch_size=10000)
    config = train_config("dataset=mnist").dataset
    assert [round(x, 4) for x in mean + std] == [*config.mean, *config.std]


def test_stats_command_prints_the_overrides(tmp_path, capsys):
    write_image_folder(tmp_path / "pets", per_class=10)
    assert stats_main([str(tmp_path / "pets"), "--image-size", "8", "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "18 training images" in out and "dataset.mean=[" in out and "dataset.std=[" in out
    assert held_out([0] * 10 + [1] * 10, 0.1, 0).count(True) == 2  # what it left out

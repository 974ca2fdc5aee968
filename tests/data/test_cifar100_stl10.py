"""CIFAR-100 and STL-10 through torchvision, on small files in their formats written here (none
can be downloaded): what is read, and what is said when files are missing or broken."""

import logging
import pickle

import pytest
import torch
from helpers.data_files import write_cifar100, write_stl10

from orbitcl.data import (
    NO_LABEL,
    CIFAR100DataModule,
    DataNotFoundError,
    STL10DataModule,
    load_cifar100,
    load_stl10,
)


def test_cifar100_reads_images_and_fine_labels(tmp_path, caplog):
    folder = write_cifar100(tmp_path, n_train=48, n_test=16)
    with caplog.at_level(logging.WARNING):
        images, labels = load_cifar100(tmp_path, train=False, download=False)
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == list(range(16))
    rows = pickle.loads((folder / "test").read_bytes())["data"]  # (N, 3072): R, G, B planes
    assert torch.equal(images[3], torch.from_numpy(rows[3]).view(3, 32, 32))
    assert "CIFAR-100 test split: 16 images, not the published 10000" in caplog.text


def test_stl10_reads_each_split(tmp_path):
    written = write_stl10(tmp_path, n_train=24, n_test=16, n_unlabeled=40)
    for split in ("train", "test", "unlabeled"):
        images, labels = load_stl10(tmp_path, split, download=False)
        assert torch.equal(images, torch.from_numpy(written[split])), split
        if split == "unlabeled":
            assert labels.tolist() == [NO_LABEL] * 40
        else:
            assert labels.tolist() == [i % 10 for i in range(len(images))]  # 1..10 on disk
    images, labels = load_stl10(tmp_path, "train+unlabeled", download=False)
    assert len(images) == 64 and labels.tolist()[23:26] == [3, NO_LABEL, NO_LABEL]


@pytest.mark.parametrize("datamodule_cls", [CIFAR100DataModule, STL10DataModule])
def test_missing_files_are_named_with_how_to_get_them(datamodule_cls, tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        datamodule_cls(data_dir=tmp_path, download=False).prepare_data()
    message = str(error.value)
    files = ["train", "test", "meta"] if datamodule_cls is CIFAR100DataModule else ["test_X.bin"]
    assert all(f"  {name}: missing" in message for name in files)
    assert "dataset.download=true" in message and "ORBITCL_DATA_DIR" in message
    assert ".tar.gz, extracted into the data folder" in message  # the archive's address
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_truncated_files_are_named(tmp_path):
    folder = write_cifar100(tmp_path)
    (folder / "train").write_bytes((folder / "train").read_bytes()[:5000])
    with pytest.raises(DataNotFoundError, match="CIFAR-100's train split cannot be read"):
        load_cifar100(tmp_path, train=True, download=False)
    folder = tmp_path / "stl10_binary"
    write_stl10(tmp_path)
    (folder / "test_X.bin").write_bytes((folder / "test_X.bin").read_bytes()[:-100])
    with pytest.raises(DataNotFoundError, match="test_X.bin: corrupt or truncated"):
        load_stl10(tmp_path, "test", download=False)
    (folder / "train_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataNotFoundError, match=r"train_y.bin: .*\(2 labels for 24 images\)"):
        load_stl10(tmp_path, "train", download=False)


def test_stl10_trains_on_unlabeled_images_and_votes_with_the_labelled_ones(tmp_path):
    write_stl10(tmp_path, n_train=24, n_test=16, n_unlabeled=40)
    datamodule = STL10DataModule(data_dir=tmp_path, download=False, batch_size=8, num_workers=0)
    assert datamodule.missing_labels == "train_split='unlabeled' holds STL-10's unlabeled images"
    datamodule.setup()
    bank, queries = datamodule.val_dataloader()
    assert len(datamodule.train_dataloader().dataset) == 40
    assert len(bank.dataset) == 24 and len(queries.dataset) == 16
    labelled = STL10DataModule(data_dir=tmp_path, train_split="train")
    assert labelled.missing_labels is None
    with pytest.raises(ValueError, match="^train_split='test' is invalid"):
        STL10DataModule(data_dir=tmp_path, train_split="test")

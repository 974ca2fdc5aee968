"""No CIFAR file can run code: crafted train, test and meta pickles of both datasets, each of
which runs its payload under plain `pickle.load`, are refused by name before anything is called;
re-packed and partial copies are read by their structure."""

import builtins
import logging
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch
from helpers.data_files import write_cifar10, write_cifar100

from orbitcl.data import DataNotFoundError, load_cifar10, load_cifar100
from orbitcl.data.safe_pickle import RefusedPickleError, load_pickle


class Payload:
    """Pickles as a call of `target` that creates the file `marker`."""

    def __init__(self, target: str, marker: str):
        self.target, self.marker = target, marker

    def __reduce__(self):
        touch = f"open({self.marker!r}, 'w').close()"
        return {
            "posix.system": (os.system, (f"touch {self.marker}",)),
            "builtins.eval": (eval, (touch,)),
            "subprocess.Popen": (subprocess.Popen, (["touch", self.marker],)),
            "builtins.exec": (builtins.exec, (touch,)),
        }[self.target]


TARGETS = ["posix.system", "builtins.eval", "subprocess.Popen", "builtins.exec"]
# (dataset, folder, file, loaders that read it: train split, test split)
FILES = [
    ("cifar10", "cifar-10-batches-py", "data_batch_2", [True]),
    ("cifar10", "cifar-10-batches-py", "test_batch", [False]),
    ("cifar10", "cifar-10-batches-py", "batches.meta", [True, False]),
    ("cifar100", "cifar-100-python", "train", [True]),
    ("cifar100", "cifar-100-python", "test", [False]),
    ("cifar100", "cifar-100-python", "meta", [True, False]),
]
LOADERS = {"cifar10": (write_cifar10, load_cifar10), "cifar100": (write_cifar100, load_cifar100)}


@pytest.mark.parametrize("target", TARGETS)
def test_each_payload_runs_under_plain_pickle(tmp_path, target):
    """The payloads are real: plain unpickling creates the marker."""
    marker = tmp_path / "ran"
    result = pickle.loads(pickle.dumps({"data": Payload(target, str(marker))}))
    if isinstance(result["data"], subprocess.Popen):
        result["data"].wait()
    assert marker.exists()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dataset,folder,name,splits", FILES)
def test_a_crafted_file_is_refused_naming_it_and_runs_nothing(
    tmp_path, dataset, folder, name, splits, target
):
    write, load = LOADERS[dataset]
    write(tmp_path / "data")
    path = tmp_path / "data" / folder / name
    marker = tmp_path / "ran"
    # The payload sits inside a well-formed dict, where a real file's arrays would be.
    crafted = pickle.loads(path.read_bytes()) | {"data": Payload(target, str(marker))}
    path.write_bytes(pickle.dumps(crafted, protocol=2))
    for train in splits:
        with pytest.raises(RefusedPickleError) as error:
            load(tmp_path / "data", train=train, download=False)
        assert str(error.value).startswith(
            f"{path} asks to load `{target}`: not a CIFAR file, refused"
        )
    assert isinstance(error.value, DataNotFoundError)  # the command line exits 2 with it
    assert not marker.exists()


def test_a_crafted_cifar100_stops_the_run_before_anything_is_written(tmp_path, train_config):
    from orbitcl.training.fit import train

    folder = write_cifar100(tmp_path / "data")
    marker = tmp_path / "ran"
    (folder / "train").write_bytes(pickle.dumps(Payload("posix.system", str(marker))))
    cfg = train_config("dataset=cifar100", f"dataset.data_dir={tmp_path / 'data'}")
    with pytest.raises(RefusedPickleError, match="asks to load `posix.system`"):
        train(cfg, tmp_path / "run")
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_and_scalars_of_every_protocol_load(tmp_path, protocol):
    value = {
        "data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "labels": [np.int64(3), 1],
        "bytes": b"\x00\xff",
        "name": "x",
        "f": 1.5,
    }
    path = tmp_path / "file"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_pickle(path, "CIFAR")
    assert np.array_equal(loaded["data"], value["data"]) and loaded["labels"] == [3, 1]
    assert loaded["bytes"] == b"\x00\xff" and (loaded["name"], loaded["f"]) == ("x", 1.5)


def test_numpy_1_names_load(tmp_path):
    """Files written by numpy 1 name `numpy.core.multiarray`, as the published CIFAR files do."""
    path = tmp_path / "file"
    data = pickle.dumps(np.arange(4, dtype=np.uint8), protocol=2)
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_pickle(path, "CIFAR").tolist() == [0, 1, 2, 3]


def test_codecs_encode_takes_latin1_only(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(pickle.dumps(b"ab", protocol=2).replace(b"latin1", b"rot13 "))
    with pytest.raises(pickle.UnpicklingError, match="encoding 'rot13 ' is refused"):
        load_pickle(path, "CIFAR")


def test_a_repacked_and_partial_cifar10_is_read_by_structure_with_a_warning(tmp_path, caplog):
    folder = write_cifar10(tmp_path, batches=(40, 24), n_test=16, protocol=2)
    with caplog.at_level(logging.WARNING):
        images, labels = load_cifar10(tmp_path, train=True, download=False)
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [i % 10 for i in range(40)] + [i % 10 for i in range(24)]
    rows = pickle.loads((folder / "data_batch_2").read_bytes())["data"]
    assert torch.equal(images[40 + 5], torch.from_numpy(rows[5]).view(3, 32, 32))
    assert "data_batch_1, data_batch_2 in" in caplog.text
    assert "match no published md5" in caplog.text
    assert "CIFAR-10 train split: 64 images, not the published 50000" in caplog.text


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"data": np.zeros((4, 3072), np.uint8)}, "not a dict holding 'data' and 'labels'"),
        ({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}, r"shape \(4, 100\)"),
        ({"data": np.zeros((4, 3072), np.float32), "labels": [0] * 4}, "not a 2-D uint8 array"),
        ({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 3}, "not 4 integers"),
        ({"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 10]}, r"outside 0..9"),
    ],
)
def test_a_file_of_another_structure_is_named(tmp_path, entry, message):
    folder = write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps(entry))
    with pytest.raises(DataNotFoundError, match=f"{folder / 'test_batch'} is not a CIFAR-10 file"):
        load_cifar10(tmp_path, train=False, download=False)
    with pytest.raises(DataNotFoundError, match=message):
        load_cifar10(tmp_path, train=False, download=False)


def test_missing_cifar10_files_are_named(tmp_path):
    folder = write_cifar10(tmp_path)
    for name in ("data_batch_1", "data_batch_2", "batches.meta"):
        (folder / name).unlink()
    with pytest.raises(DataNotFoundError) as error:
        load_cifar10(tmp_path, train=True, download=False)
    message = str(error.value)
    assert "(at least one data_batch_N)" in message and "  data_batch_1: missing" in message
    assert "  batches.meta: missing" in message and "  test_batch: ok" in message

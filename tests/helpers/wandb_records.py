"""Reads back what an offline W&B run logged, from its `run-*.wandb` file.

The file is a LevelDB-style log of protobuf `Record`s (what `wandb sync` uploads): a 7-byte file
header, then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type: full,
first, middle, last). wandb ships no reader for it, so this is the smallest one that works.
"""

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, found, partial = HEADER, [], b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # too short for a chunk header: zero padding to the next block
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if length == 0 and kind == 0:  # zero padding
            pos += left
            continue
        payload = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            found.append(payload)
        elif kind == FIRST:
            partial = payload
        elif kind == MIDDLE:
            partial += payload
        elif kind == LAST:
            found.append(partial + payload)
    return found


def parsed(run_file: Path) -> list:
    """The `Record` protobufs of one `run-*.wandb` file, in order."""
    out = []
    for raw in records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)  # nested keys: histograms, images


def history(run_dir: Path) -> list[dict]:
    """Every `wandb.log` call of the offline run under `run_dir/wandb`, as {key: value}, with
    nested keys (histograms, images) joined by "/"."""
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return [
        {_key(item): json.loads(item.value_json) for item in record.history.item}
        for record in parsed(run_file)
        if record.WhichOneof("record_type") == "history"
    ]


def runs(directory: Path) -> dict[str, dict]:
    """{display name: {group, job_type, config, exit_code, history keys}} of the offline W&B runs
    under `directory`."""
    found = {}
    for run_file in directory.glob("**/offline-run-*/run-*.wandb"):
        info = {"history": set()}
        for record in parsed(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                info["group"] = record.run.run_group
                info["job_type"] = record.run.job_type
                info["config"] = {i.key: json.loads(i.value_json) for i in record.run.config.update}
                info["name"] = record.run.display_name
            elif kind == "exit":
                info["exit_code"] = record.exit.exit_code
            elif kind == "history":
                info["history"] |= {_key(item) for item in record.history.item}
        found[info["name"]] = info
    return found

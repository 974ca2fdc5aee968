"""The one way orbitcl reads a pickle: an unpickler that builds only what CIFAR's batch and meta
files hold, so that a dataset file from elsewhere cannot run code.

A pickle is a program: its GLOBAL opcodes name any importable callable (`posix.system`,
`builtins.eval`, ...) and REDUCE calls it. Dicts, lists, strings, bytes and numbers have opcodes
of their own; what CIFAR's files need beyond them is numpy's reconstruction of arrays and
scalars, and, in files re-packed by Python 3 with protocol 2, `_codecs.encode` for bytes. Every
other name is refused when the pickle asks for it, before anything is called.
"""

import _compat_pickle
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from orbitcl.data.errors import DataNotFoundError

# numpy 2 keeps its internals in numpy._core; numpy 1 in numpy.core. Files name either, depending
# on the numpy that wrote them, so both names map to this numpy's function.
_NUMPY_CORE = np._core if hasattr(np, "_core") else np.core


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as pickle protocol 2 uses it for bytes (latin-1 only): any other codec
    name is refused, so that no codec module is looked up on a file's behalf."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"`_codecs.encode` with encoding {encoding!r} is refused")
    return text.encode("latin-1")


ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_CORE.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_CORE.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _NUMPY_CORE.multiarray.scalar,  # e.g. np.int64 labels
    ("numpy._core.multiarray", "scalar"): _NUMPY_CORE.multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _NUMPY_CORE.numeric._frombuffer,  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _NUMPY_CORE.numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,  # bytes, pickled by Python 3 with protocol 2
}


class RefusedPickleError(DataNotFoundError):
    """A pickle asked for something a dataset file does not hold (code, most likely)."""


class _DatasetUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, what: str):
        super().__init__(file, encoding="latin1")  # Python 2's str: CIFAR's original files
        self.path = path
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        # Python 2's names (`__builtin__.eval`) as Python 3 would resolve them, as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[module, name]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED:
            return ALLOWED[module, name]
        raise RefusedPickleError(
            f"{self.path} asks to load `{module}.{name}`: not a {self.what} file, refused "
            "(nothing of it was run). Replace it with the dataset's own file."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickleError(
            f"{self.path} asks for a persistent object: not a {self.what} file, refused"
        )


def load_pickle(path: str | Path, what: str) -> Any:
    """The object pickled in `path`, built from plain data and numpy arrays only. Raises
    RefusedPickleError, naming the file and what it asked for, if it asks for anything else;
    `what` names the format in that message ("CIFAR")."""
    path = Path(path)
    with open(path, "rb") as f:
        return _DatasetUnpickler(f, path, what).load()

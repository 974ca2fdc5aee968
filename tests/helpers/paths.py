"""Where the project's files are, seen from the tests."""

from pathlib import Path

from orbitcl import CONF_DIR  # noqa: F401 -- re-exported: Hydra's primary config directory

ROOT = Path(__file__).resolve().parents[2]  # the checkout
SHARED_DATA = (ROOT / "../shared/data").resolve()  # the offline dataset copies

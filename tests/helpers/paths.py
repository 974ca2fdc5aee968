"""Where the project's files are, seen from the tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
CONF_DIR = ROOT / "conf"  # Hydra's primary config directory
SHARED_DATA = (ROOT / "../shared/data").resolve()  # the offline dataset copies

"""orbitcl: experiments on the geometry of contrastive learning (NT-Xent, ORL and relatives)."""

__version__ = "0.1.0"

from pathlib import Path

# Hydra's config groups ship inside the package, so that a wheel, `pip install .` and an editable
# install compose the same configs from any working directory.
CONF_DIR = Path(__file__).parent / "conf"

"""orbitcl: experiments on the geometry of contrastive learning (NT-Xent, ORL and relatives)."""

__version__ = "0.1.0"

"""Hydra config groups of orbitcl, shipped in the package (`pkg://orbitcl.conf`)."""

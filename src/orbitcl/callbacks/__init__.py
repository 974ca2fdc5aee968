"""Diagnostics during training, one concern per callback: the tension of negatives, orbit
geometry at each validation, and UMAP pictures of orbits."""

from orbitcl.callbacks.orbit import OrbitDiagnostics
from orbitcl.callbacks.tension import TensionMonitor
from orbitcl.callbacks.umap_plot import UMAPPlot

__all__ = ["OrbitDiagnostics", "TensionMonitor", "UMAPPlot"]

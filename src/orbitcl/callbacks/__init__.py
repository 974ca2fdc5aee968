"""Diagnostics during training, one concern per callback: the tension of negatives, orbit
geometry and class geometry at each validation, similarities of positives and negatives,
UMAP pictures of orbits, the spectrum of the representation (rank, collapse, classes), the
standard deviation of the normalised embeddings (collapse of methods without negatives), and the
online linear classifier. The names of what they log are in
``names``.

The callbacks are imported when first used, so that ``orbitcl.callbacks.names`` stays light.
"""

import importlib

_WHERE = {
    "ClassGeometry": "orbitcl.callbacks.class_geometry",
    "CollapseMonitor": "orbitcl.callbacks.collapse",
    "OnlineLinearClassifier": "orbitcl.callbacks.online_linear",
    "OrbitDiagnostics": "orbitcl.callbacks.orbit",
    "SimilarityStatistics": "orbitcl.callbacks.similarity",
    "SpectrumDiagnostics": "orbitcl.callbacks.spectrum",
    "TensionMonitor": "orbitcl.callbacks.tension",
    "UMAPPlot": "orbitcl.callbacks.umap_plot",
}

__all__ = [
    "ClassGeometry",
    "CollapseMonitor",
    "OnlineLinearClassifier",
    "OrbitDiagnostics",
    "SimilarityStatistics",
    "SpectrumDiagnostics",
    "TensionMonitor",
    "UMAPPlot",
]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

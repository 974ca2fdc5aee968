"""The names of the scalars orbitcl logs, defined once: the module and the callbacks log under
them, and the sweep report (``orbitcl.experiments.report``) reads them. Light to import (no torch,
no Lightning), so that the report starts fast."""

# ContrastiveModule (orbitcl.training.module)
TRAIN_LOSS = "train/loss"
KNN_ACC = "val/knn_acc"

# OnlineLinearClassifier (callbacks.online_linear)
LINEAR_ACC = "val/linear_acc"

# OrbitDiagnostics (callbacks.orbit): each metric of ``metrics.geometry.orbit_metrics`` per
# embedding space; the projector's carry no space in their name.
GEOMETRY_METRICS = ("alignment", "uniformity")  # Wang and Isola's; the others are the orbit's


def orbit_metric(name: str, space: str = "projector") -> str:
    """``orbit/variance``, ``geometry/encoder/alignment``, ...: a metric of an embedding space."""
    group = "geometry" if name in GEOMETRY_METRICS else "orbit"
    return f"{group}/{name}" if space == "projector" else f"{group}/{space}/{name}"


ANCHOR_VIEW_COS = orbit_metric("anchor_view_cos")
ORBIT_VARIANCE = orbit_metric("variance")
ALIGNMENT = orbit_metric("alignment")
UNIFORMITY = orbit_metric("uniformity")


# TensionMonitor (callbacks.tension): each statistic of ``metrics.geometry.tension_summary``.
def tension_metric(statistic: str) -> str:
    return f"tension/{statistic}"


TENSION_MEAN = tension_metric("mean")


# ClassGeometry (callbacks.class_geometry): each metric of metrics.class_geometry; with
# SpectrumDiagnostics' neural collapse per space (the projector's carry no space in the name).
def class_metric(name: str, space: str = "projector") -> str:
    return f"classes/{name}" if space == "projector" else f"classes/{space}/{name}"


# SpectrumDiagnostics (callbacks.spectrum): each metric of metrics.spectrum per embedding space.
def spectrum_metric(name: str, space: str = "projector") -> str:
    """``spectrum/rankme``, ``spectrum/encoder/alpha``, ..."""
    return f"spectrum/{name}" if space == "projector" else f"spectrum/{space}/{name}"


RANKME = spectrum_metric("rankme")
ALPHA = spectrum_metric("alpha")
LIDAR = spectrum_metric("lidar")
NC1 = class_metric("nc1")


# SimilarityStatistics (callbacks.similarity): each statistic and reference of
# ``metrics.similarity``, on the fixed training images or (``batch``) on the training batch.
def similarity_metric(statistic: str, batch: bool = False) -> str:
    """``similarity/neg_cross_var``, ``similarity/batch/pos_mean``, ..."""
    return f"similarity/batch/{statistic}" if batch else f"similarity/{statistic}"


NEG_CROSS_VAR = similarity_metric("neg_cross_var")


# CollapseMonitor (callbacks.collapse): metrics.collapse.collapse_std per embedding space.
def collapse_metric(name: str, space: str = "projector") -> str:
    """``collapse/std``, ``collapse/encoder/std``"""
    return f"collapse/{name}" if space == "projector" else f"collapse/{space}/{name}"


COLLAPSE_STD = collapse_metric("std")

# ContrastiveModule, for the InfoNCE-type losses: log(K + 1) - loss, in nats (a bound).
MI_LOWER_BOUND = "train/mi_lower_bound"

# The sweep report's default columns: short enough to read; ``--metrics`` chooses others.
REPORTED = (
    KNN_ACC,
    LINEAR_ACC,
    ANCHOR_VIEW_COS,
    ORBIT_VARIANCE,
    ALIGNMENT,
    UNIFORMITY,
    TENSION_MEAN,
    RANKME,
    ALPHA,
    TRAIN_LOSS,
)

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

# The sweep report's default columns: short enough to read; ``--metrics`` chooses others.
REPORTED = (
    KNN_ACC,
    LINEAR_ACC,
    ANCHOR_VIEW_COS,
    ORBIT_VARIANCE,
    ALIGNMENT,
    UNIFORMITY,
    TENSION_MEAN,
    TRAIN_LOSS,
)

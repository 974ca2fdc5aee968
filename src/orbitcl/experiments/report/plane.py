"""The alignment-uniformity plane of a sweep (Wang and Isola 2020): `geometry/alignment` against
`geometry/uniformity`, each setting a curve through its temperatures, and where a setting's
points lie against a baseline's temperature curve (NT-Xent's).

ORL's tension acts, to first order, like a higher temperature for the negatives
(docs/orl.md, "Known confound"). If ORL's points lie on NT-Xent's temperature curve,
ORL moves along the trade-off a temperature moves along; off it, it does something a
temperature cannot. The rule, said in the report too: a point is ON the curve when its box
(uniformity ± CI, alignment ± CI, 95% over seeds) meets the band of the curve, the union of the
convex hulls of consecutive temperatures' boxes; otherwise BELOW or ABOVE it (its alignment
minus the curve's, interpolated linearly at the point's uniformity), or BEYOND it when its
uniformity lies outside the curve's range. Without intervals (one seed) or with the baseline at
one temperature, the placement is UNRESOLVED.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import linprog

from orbitcl.callbacks.names import ALIGNMENT, UNIFORMITY
from orbitcl.checks.numbers import is_number
from orbitcl.experiments.report.summary import LEVEL

ON, BELOW, ABOVE, BEYOND, UNRESOLVED = "on", "below", "above", "beyond", "not resolved"
METRICS = (ALIGNMENT, UNIFORMITY)


@dataclass(frozen=True)
class Point:
    x: Any  # the line's value of the swept x key (the temperature); None if it was not swept
    uniformity: float
    uniformity_ci: float  # half-width of the CI over seeds; NaN for one seed
    alignment: float
    alignment_ci: float


@dataclass(frozen=True)
class Placement:
    line: str
    point: Point
    kind: str  # ON, BELOW, ABOVE, BEYOND, UNRESOLVED
    offset: float  # alignment minus the curve's at the point's uniformity (BELOW, ABOVE)
    note: str = ""


@dataclass
class Plane:
    lines: dict[str, list[Point]]  # label -> points in x order
    settings: dict[str, dict]  # label -> the line's values of the swept keys
    curve: str | None  # the setting (e.g. "ntxent") whose temperature curves the others meet
    placements: list[Placement]


def plane(
    summary: list[dict],
    keys: list[str],
    x: str,
    replicate: str,
    compare: str | None = None,
    curve: Any = None,
) -> Plane | None:
    """The plane from the summary rows (`summary.summarize` over METRICS); each line a setting
    of the swept keys other than `x` and `replicate`. Points of lines whose `compare` value is
    not `curve` are placed against the line that differs only in it. None with nothing to draw."""
    line_keys = [k for k in keys if k not in (x, replicate)]
    lines: dict[str, list[Point]] = {}
    settings: dict[str, dict] = {}
    for row in summary:
        if not (math.isfinite(row[ALIGNMENT]) and math.isfinite(row[UNIFORMITY])):
            continue
        setting = {k: row[k] for k in line_keys}
        label = setting_label(setting)
        settings[label] = setting
        lines.setdefault(label, []).append(
            Point(
                row.get(x),
                row[UNIFORMITY],
                row[f"{UNIFORMITY} ci95"],
                row[ALIGNMENT],
                row[f"{ALIGNMENT} ci95"],
            )
        )
    if not lines:
        return None
    for points in lines.values():
        points.sort(key=lambda p: (p.x is None, p.x if is_number(p.x) else str(p.x)))
    placements = []
    has_curve = compare in line_keys and any(s[compare] == curve for s in settings.values())
    if has_curve:
        for label, setting in settings.items():
            if setting[compare] == curve:
                continue
            baseline = setting_label(setting | {compare: curve})
            for point in lines[label]:
                placements.append(place(label, point, lines.get(baseline, [])))
    return Plane(
        lines, settings, setting_label({compare: curve}) if has_curve else None, placements
    )


def setting_label(setting: dict) -> str:
    """`orl` for one key, `loss=orl, dataset.batch_size=64` for several."""
    if len(setting) == 1:
        return str(next(iter(setting.values())))
    return ", ".join(f"{k}={v}" for k, v in setting.items())


def place(line: str, point: Point, curve: Sequence[Point]) -> Placement:
    """Where `point` lies against the temperature curve through `curve` (in temperature order)."""
    if len(curve) < 2:
        return Placement(line, point, UNRESOLVED, math.nan, "the curve has fewer than 2 points")
    if any(math.isnan(p.uniformity_ci) or math.isnan(p.alignment_ci) for p in [point, *curve]):
        return Placement(line, point, UNRESOLVED, math.nan, "one seed: no interval")
    box = _box(point)
    for a, b in zip(curve, curve[1:], strict=False):
        if _meets(box, _corners(a) + _corners(b)):
            return Placement(line, point, ON, math.nan)
    offsets = [
        point.alignment - _interpolate(point.uniformity, a, b)
        for a, b in zip(curve, curve[1:], strict=False)
        if min(a.uniformity, b.uniformity) <= point.uniformity <= max(a.uniformity, b.uniformity)
    ]
    if not offsets:
        low, high = min(p.uniformity for p in curve), max(p.uniformity for p in curve)
        note = f"its uniformity lies outside the curve's [{low:.4g}, {high:.4g}]"
        return Placement(line, point, BEYOND, math.nan, note)
    offset = min(offsets, key=abs)
    return Placement(line, point, BELOW if offset < 0 else ABOVE, offset)


def _box(p: Point) -> tuple[float, float, float, float]:
    return (
        p.uniformity - p.uniformity_ci,
        p.uniformity + p.uniformity_ci,
        p.alignment - p.alignment_ci,
        p.alignment + p.alignment_ci,
    )


def _corners(p: Point) -> list[tuple[float, float]]:
    u_low, u_high, a_low, a_high = _box(p)
    return [(u_low, a_low), (u_low, a_high), (u_high, a_low), (u_high, a_high)]


def _meets(box: tuple[float, float, float, float], corners: list[tuple[float, float]]) -> bool:
    """Whether the box (u_low, u_high, a_low, a_high) meets the convex hull of `corners`: is some
    convex combination of the corners inside the box (a linear feasibility problem)?"""
    u, a = np.array(corners).T
    u_low, u_high, a_low, a_high = box
    result = linprog(
        np.zeros(len(u)),
        A_ub=np.stack([u, -u, a, -a]),
        b_ub=[u_high, -u_low, a_high, -a_low],
        A_eq=np.ones((1, len(u))),
        b_eq=[1.0],
        bounds=(0, None),
        method="highs",
    )
    return result.status == 0  # 0: a feasible point was found; 2: infeasible


def _interpolate(uniformity: float, a: Point, b: Point) -> float:
    """The alignment on the segment a-b at `uniformity` (within its range)."""
    if a.uniformity == b.uniformity:
        return (a.alignment + b.alignment) / 2
    w = (uniformity - a.uniformity) / (b.uniformity - a.uniformity)
    return a.alignment + w * (b.alignment - a.alignment)


def line_verdict(placements: Sequence[Placement]) -> str:
    """ON if every point of a line is on the curve; BELOW / ABOVE if every point off it lies on
    that side (and some do); UNRESOLVED otherwise."""
    kinds = {p.kind for p in placements}
    if kinds == {ON}:
        return ON
    off = kinds & {BELOW, ABOVE}
    return off.pop() if len(off) == 1 else UNRESOLVED


def plane_figure(result: Plane, x: str, replicate: str) -> Figure:
    """Alignment against uniformity, one curve per setting through its x values (annotated),
    error bars the CI over `replicate`."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(result.lines.items()):
        us = [p.uniformity for p in points]
        aligns = [p.alignment for p in points]
        xerr = [0.0 if math.isnan(p.uniformity_ci) else p.uniformity_ci for p in points]
        yerr = [0.0 if math.isnan(p.alignment_ci) else p.alignment_ci for p in points]
        style = "--" if label == result.curve else "-"
        ax.errorbar(
            us,
            aligns,
            xerr=xerr,
            yerr=yerr,
            marker="o",
            capsize=3,
            linestyle=style,
            color=f"C{i}",
            label=label,
        )
        for p in points:
            if p.x is not None:
                ax.annotate(
                    f"{p.x:g}" if is_number(p.x) else str(p.x),
                    (p.uniformity, p.alignment),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=f"C{i}",
                )
    ax.set_xlabel(f"{UNIFORMITY} (lower: more uniform)")
    ax.set_ylabel(f"{ALIGNMENT} (lower: tighter)")
    points_are = (
        f"labelled by {x}"
        if any(p.x is not None for ps in result.lines.values() for p in ps)
        else "one point per setting"
    )
    ax.set_title(
        f"alignment-uniformity plane, {points_are}; mean $\\pm$ {LEVEL:.0%} CI over {replicate}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig

"""Comparing a sweep's settings with a reference setting, pure: for each other setting and each
metric, the difference reference - other, its Student-t interval and test, an effect size,
Holm's correction over one table of comparisons, and a verdict.

The rule (said in the report too):

- Paired by the replicate key (the seed) over the seeds both settings finished, when there are
  at least 2: the differences d_i = reference_i - other_i, mean d, s_d their sample standard
  deviation, t = mean / (s_d / sqrt(n)) with n - 1 degrees of freedom (Student 1908); effect
  size Cohen's d_z = mean / s_d.
- Otherwise Welch's unequal-variance t over all finished runs of each (Welch 1947; degrees of
  freedom by Welch-Satterthwaite), when each has at least 2; effect size Hedges' g, the
  difference of means over the pooled standard deviation, times 1 - 3 / (4 (n_r + n_o) - 9).
- Fewer values give no interval and no test: "not resolved".
- Interval: mean ± t(0.975, df) x standard error, two-sided 95%, not adjusted for multiplicity.
- The two-sided p-values of one table are adjusted by Holm's step-down (Holm 1979); the
  verdict is "higher" or "lower" (the reference's value against the other's) where the adjusted
  p is below ALPHA, else "no difference detected" at that number of seeds.
- Zero variance (every difference equal): a nonzero difference has p = 0, a zero one p = 1.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from orbitcl.experiments.report.summary import LEVEL, REPLICATE_KEY

ALPHA = 0.05  # the family-wise error rate of one table (Holm)

HIGHER = "higher"
LOWER = "lower"
NO_DIFFERENCE = "no difference detected"
NOT_RESOLVED = "not resolved"

PAIRED = "paired t"
WELCH = "Welch t"
NO_TEST = "none"


@dataclass(frozen=True)
class Difference:
    """reference - other for one metric, from the values of each setting by replicate."""

    test: str  # PAIRED, WELCH or NO_TEST
    n_reference: int  # finite values of the reference setting
    n_other: int
    n_pairs: int  # replicates both have (used by the paired test)
    mean: float  # mean paired difference, or the difference of the means (Welch)
    low: float  # the two-sided LEVEL interval of `mean`
    high: float
    p: float  # two-sided, not adjusted; NaN without a test
    effect: float  # Cohen's d_z (paired) or Hedges' g (Welch); NaN when undefined
    note: str = ""  # why there is no test, or what was special

    @property
    def effect_name(self) -> str:
        return {PAIRED: "d_z", WELCH: "g"}.get(self.test, "")


def difference(
    reference: Mapping[Any, float], other: Mapping[Any, float], level: float = LEVEL
) -> Difference:
    """The difference reference - other of two settings' values, each keyed by replicate (the
    seed; keys that never match, such as job names, make it a Welch comparison). Values that
    are None or not finite are left out."""
    ref = {k: float(v) for k, v in reference.items() if v is not None and math.isfinite(v)}
    oth = {k: float(v) for k, v in other.items() if v is not None and math.isfinite(v)}
    common = [k for k in ref if k in oth]
    counts = {"n_reference": len(ref), "n_other": len(oth), "n_pairs": len(common)}
    if len(common) >= 2:
        return _paired([ref[k] - oth[k] for k in common], level, counts)
    if len(ref) >= 2 and len(oth) >= 2:
        return _welch(list(ref.values()), list(oth.values()), level, counts)
    mean = _mean(list(ref.values())) - _mean(list(oth.values())) if ref and oth else math.nan
    if not ref or not oth:
        note = "no value on one side (not logged, or no finished run)"
    else:
        note = "one value on a side: no interval"
    return Difference(
        NO_TEST,
        **counts,
        mean=mean,
        low=math.nan,
        high=math.nan,
        p=math.nan,
        effect=math.nan,
        note=note,
    )


def _mean(x: Sequence[float]) -> float:
    return math.fsum(x) / len(x)


def _variance(x: Sequence[float]) -> float:
    """The sample variance (n - 1 in the denominator)."""
    m = _mean(x)
    return math.fsum((v - m) ** 2 for v in x) / (len(x) - 1)


def _paired(d: list[float], level: float, counts: dict) -> Difference:
    n, mean = len(d), _mean(d)
    s = math.sqrt(_variance(d))
    if s == 0:
        return _without_spread(PAIRED, mean, counts)
    se = s / math.sqrt(n)
    return _t_result(PAIRED, mean, se, n - 1, level, effect=mean / s, counts=counts)


def _welch(x: list[float], y: list[float], level: float, counts: dict) -> Difference:
    nx, ny = len(x), len(y)
    vx, vy = _variance(x), _variance(y)
    mean = _mean(x) - _mean(y)
    se2 = vx / nx + vy / ny
    if se2 == 0:
        return _without_spread(WELCH, mean, counts)
    dof = se2**2 / ((vx / nx) ** 2 / (nx - 1) + (vy / ny) ** 2 / (ny - 1))
    pooled = math.sqrt(((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2))
    hedges = (1 - 3 / (4 * (nx + ny) - 9)) * mean / pooled if pooled > 0 else math.nan
    return _t_result(WELCH, mean, math.sqrt(se2), dof, level, effect=hedges, counts=counts)


def _t_result(
    test: str, mean: float, se: float, dof: float, level: float, effect: float, counts: dict
) -> Difference:
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), dof))
    half = float(stats.t.ppf((1 + level) / 2, dof)) * se
    return Difference(
        test, **counts, mean=mean, low=mean - half, high=mean + half, p=p, effect=effect
    )


def _without_spread(test: str, mean: float, counts: dict) -> Difference:
    """Every difference (every value of each side, for Welch) the same: no noise to test
    against, so a nonzero difference is certain (p = 0) and a zero one absent (p = 1)."""
    p, effect = (1.0, math.nan) if mean == 0 else (0.0, math.copysign(math.inf, mean))
    return Difference(
        test, **counts, mean=mean, low=mean, high=mean, p=p, effect=effect, note="zero variance"
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given. With the m finite p-values
    sorted, p_(1) <= ... <= p_(m), the adjusted p_(i) = max over j <= i of min(1, (m - j + 1)
    p_(j)); NaN (no test) stays NaN and does not count in m."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(order)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(diff: Difference, p_adjusted: float, alpha: float = ALPHA) -> str:
    """HIGHER / LOWER (the reference's value against the other's) where the adjusted p is below
    alpha, NO_DIFFERENCE where a test found none, NOT_RESOLVED without a test."""
    if diff.test == NO_TEST or math.isnan(p_adjusted):
        return NOT_RESOLVED
    if p_adjusted < alpha:
        return HIGHER if diff.mean > 0 else LOWER
    return NO_DIFFERENCE


@dataclass(frozen=True)
class Comparison:
    """One row of a comparison table: `key=reference` against `key=other` in one context."""

    context: dict[str, Any]  # the values of the swept keys other than key and replicate
    other: Any  # the other setting's value of the compared key
    metric: str
    difference: Difference
    p_holm: float  # Holm-adjusted over the table
    verdict: str

    def as_row(self) -> dict[str, Any]:
        """Flat, for a table: the context's keys, then the setting, metric and statistics."""
        d = self.difference
        return self.context | {
            "setting": self.other,
            "metric": self.metric,
            "difference": d.mean,
            "ci_low": d.low,
            "ci_high": d.high,
            "test": d.test,
            "n_pairs": d.n_pairs,
            "n_reference": d.n_reference,
            "n_other": d.n_other,
            "effect": d.effect,
            "effect_size": d.effect_name,
            "p": d.p,
            "p_holm": self.p_holm,
            "verdict": self.verdict,
            "note": d.note,
        }


def compare(
    rows: list[dict],
    keys: list[str],
    key: str,
    reference: Any,
    metrics: Sequence[str],
    replicate: str = REPLICATE_KEY,
    against: Sequence[Any] | None = None,
    alpha: float = ALPHA,
) -> list[Comparison]:
    """The table comparing `key=reference` with each other value of `key` (`against`, or every
    value the jobs ran), in each context (setting of the swept keys other than `key` and
    `replicate`), for each metric; one Holm family. `rows`: the report's job rows (swept
    values, status, metrics); failed jobs are left out."""
    context_keys = [k for k in keys if k not in (key, replicate)]
    contexts: dict[tuple, list[dict]] = {}
    for row in rows:  # repr: values may be lists, and 1 and 1.0 stay apart
        contexts.setdefault(tuple(repr(row.get(k)) for k in context_keys), []).append(row)
    table = []
    for members in contexts.values():
        context = {k: members[0].get(k) for k in context_keys}
        others = against if against is not None else _values_in_order(members, key, reference)
        ref_rows = _finished(members, key, reference)
        for other in others:
            other_rows = _finished(members, key, other)
            for metric in metrics:
                diff = difference(
                    _by_replicate(ref_rows, metric, replicate, keys),
                    _by_replicate(other_rows, metric, replicate, keys),
                )
                table.append((context, other, metric, diff))
    adjusted = holm([diff.p for *_, diff in table])
    return [
        Comparison(context, other, metric, diff, p, verdict(diff, p, alpha))
        for (context, other, metric, diff), p in zip(table, adjusted, strict=True)
    ]


def _values_in_order(rows: list[dict], key: str, reference: Any) -> list[Any]:
    values = []
    for row in rows:
        if row.get(key) != reference and row.get(key) not in values:
            values.append(row.get(key))
    return values


def _finished(rows: list[dict], key: str, value: Any) -> list[dict]:
    return [row for row in rows if row["status"] == "ok" and row.get(key) == value]


def _by_replicate(rows: list[dict], metric: str, replicate: str, keys: list[str]) -> dict:
    """{seed: value} when the replicate key was swept, else {job: value} (nothing to pair)."""
    if replicate in keys:
        return {row[replicate]: row.get(metric) for row in rows}
    return {row["job"]: row.get(metric) for row in rows}

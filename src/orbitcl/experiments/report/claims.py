"""What a study says it tests, and whether the sweep supports it, pure.

A study preset declares it under `study:` (conf/experiment/orl_controls.yaml):

    study:
      compare: loss          # the swept key whose settings are compared
      reference: orl         # the setting each other one is compared with
      against: [ntxent, orl_mean_tension]   # optional: the others (default: every one run)
      claims:                # the reference's metric against each other setting's
        - {metric: orbit/variance, expect: lower}
      report: [geometry/uniformity]   # compared too, beside the claims, with no expectation
      curve: ntxent          # the alignment-uniformity plane: whose temperature curve
      figures: {replicate: 0}         # the write-up's figures from one job per setting

A claim holds ("supported") when every one of its comparisons (each other setting, in each
context) is significant in the expected direction, is "contradicted" when any is significant
in the opposite direction, and is "not resolved" otherwise. The claims' comparisons form one
Holm family (`compare.compare`), apart from the exploratory comparison table.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orbitcl.checks.numbers import require_int
from orbitcl.experiments.report.compare import HIGHER, LOWER, Comparison

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
UNRESOLVED = "not resolved"

FIELDS = ("compare", "reference", "against", "claims", "report", "curve", "figures")
# The write-up's figures (docs/orl.md, "Orbit diagnostics"): which job of each setting, and how
# many anchors, views and UMAP images (orbitcl.analyze's options).
FIGURE_DEFAULTS = {"replicate": 0, "anchors": 200, "views": 10, "umap_images": 300, "umap_views": 5}


class StudyError(ValueError):
    """A `study:` value was rejected; the message names the field, the value and what is
    allowed."""


@dataclass(frozen=True)
class Claim:
    metric: str
    expect: str  # HIGHER or LOWER: the reference's value against each other setting's


@dataclass(frozen=True)
class Study:
    compare: str
    reference: Any
    against: list | None = None  # None: every other value the sweep ran
    claims: list[Claim] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    curve: Any = None
    figures: dict | None = None  # FIGURE_DEFAULTS updated; None: no figures


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    comparisons: list[Comparison]  # the claim's rows of the claims' table
    verdict: str


def parse_study(node: Mapping | None, swept: Mapping[str, list | None]) -> Study | None:
    """The study declared in `node` (a sweep config's `study`), checked against the sweep's keys
    and values (`swept_keys.swept_choices`); None when there is none. Raises StudyError."""
    if node is None:
        return None
    if not isinstance(node, Mapping):
        raise StudyError(f"study={node!r} is invalid: must be a mapping with {_fields()}")
    for name in node:
        if name not in FIELDS:
            raise StudyError(f"study.{name} is not a field of a study; the fields are {_fields()}")
    compare, reference = check_comparison(
        node.get("compare"),
        node.get("reference", MISSING),
        swept,
        "study.compare",
        "study.reference",
    )
    values = swept[compare]  # None: drawn from an interval, nothing to check against
    against = node.get("against")
    if against is not None:
        if isinstance(against, str) or not isinstance(against, Sequence) or not against:
            raise StudyError(f"study.against={against!r} is invalid: must be a non-empty list")
        for i, value in enumerate(against):
            _check_value(f"study.against[{i}]", value, compare, values)
            if value == reference:
                raise StudyError(f"study.against[{i}]={value!r} is invalid: it is the reference")
        against = list(against)
    claims = [_claim(i, c) for i, c in enumerate(_list(node, "claims"))]
    metrics = [c.metric for c in claims]
    for metric in metrics:
        if metrics.count(metric) > 1:
            raise StudyError(f"study.claims: {metric} is claimed twice; one claim per metric")
    report = [_metric(f"study.report[{i}]", m) for i, m in enumerate(_list(node, "report"))]
    curve = node.get("curve")
    if curve is not None:
        _check_value("study.curve", curve, compare, values)
    return Study(compare, reference, against, claims, report, curve, _figures(node))


MISSING = object()


def check_comparison(
    key: Any,
    reference: Any,
    swept: Mapping[str, list | None],
    key_name: str = "--compare",
    reference_name: str = "--reference",
) -> tuple[str, Any]:
    """(key, reference) if `key` is a swept key and `reference` one of its values (when the sweep
    lists them); else StudyError naming the option."""
    if key not in swept:
        raise StudyError(
            f"{key_name}={key!r} is invalid: must be a key the sweep varies "
            f"({', '.join(swept) or 'none'})"
        )
    if reference is MISSING:
        raise StudyError(f"{reference_name} is missing: the value of {key} to compare with")
    return key, _check_value(reference_name, reference, key, swept[key])


def _check_value(name: str, value: Any, key: str, values: list | None) -> Any:
    if values is not None and value not in values:
        raise StudyError(
            f"{name}={value!r} is invalid: must be one of the values of {key} the sweep runs "
            f"({', '.join(map(str, values))})"
        )
    return value


def _fields() -> str:
    return ", ".join(FIELDS)


def _list(node: Mapping, name: str) -> list:
    value = node.get(name)
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise StudyError(f"study.{name}={value!r} is invalid: must be a list")
    return list(value)


def _metric(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise StudyError(
            f"{name}={value!r} is invalid: must be a metric's name, e.g. orbit/variance"
        )
    return value


def _claim(i: int, node: Any) -> Claim:
    where = f"study.claims[{i}]"
    if not isinstance(node, Mapping) or set(node) != {"metric", "expect"}:
        raise StudyError(
            f"{where}={node!r} is invalid: must be a mapping with metric and expect, e.g. "
            "{metric: orbit/variance, expect: lower}"
        )
    if node["expect"] not in (HIGHER, LOWER):
        raise StudyError(
            f"{where}.expect={node['expect']!r} is invalid: must be {HIGHER} or {LOWER} (the "
            "reference's value against each other setting's)"
        )
    return Claim(_metric(f"{where}.metric", node["metric"]), node["expect"])


def _figures(node: Mapping) -> dict | None:
    value = node.get("figures")
    if value is None or value is False:
        return None
    if value is True:
        return dict(FIGURE_DEFAULTS)
    if not isinstance(value, Mapping):
        raise StudyError(f"study.figures={value!r} is invalid: must be true, false or a mapping")
    for name, option in value.items():
        if name not in FIGURE_DEFAULTS:
            raise StudyError(
                f"study.figures.{name} is not an option of the figures; the options are "
                + ", ".join(FIGURE_DEFAULTS)
            )
        if name != "replicate":
            try:
                require_int(f"study.figures.{name}", option, 1)
            except ValueError as err:
                raise StudyError(str(err)) from None
    return FIGURE_DEFAULTS | dict(value)


def judge(claim: Claim, comparisons: Sequence[Comparison]) -> str:
    """SUPPORTED when every comparison is significant in the expected direction, CONTRADICTED
    when any is significant in the opposite one, else UNRESOLVED (no comparison, or some that
    found no difference or could not test)."""
    opposite = LOWER if claim.expect == HIGHER else HIGHER
    if any(c.verdict == opposite for c in comparisons):
        return CONTRADICTED
    if comparisons and all(c.verdict == claim.expect for c in comparisons):
        return SUPPORTED
    return UNRESOLVED


def judge_claims(study: Study, table: Sequence[Comparison]) -> list[ClaimResult]:
    """Each claim of `study` with its rows of the claims' table and its verdict."""
    results = []
    for claim in study.claims:
        rows = [c for c in table if c.metric == claim.metric]
        results.append(ClaimResult(claim, rows, judge(claim, rows)))
    return results

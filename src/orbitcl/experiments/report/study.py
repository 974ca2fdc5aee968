"""A study's part of the report: comparisons with a reference setting, the claims' verdicts,
the alignment-uniformity plane and the write-up's figures, gathered from the jobs and written
as the Markdown that ends `sweep_report.md`.

The statistics live in `compare` (pure), the claims in `claims`, the plane in `plane`, the
figures in `figures`; this module chooses what to compute from the study and the command line,
and says in words what was found and by which rule.
"""

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitcl.experiments.report import plane as plane_module
from orbitcl.experiments.report.claims import FIGURE_DEFAULTS, ClaimResult, Study, judge_claims
from orbitcl.experiments.report.collect import job_rows
from orbitcl.experiments.report.compare import ALPHA, Comparison, compare
from orbitcl.experiments.report.figures import FIGURES_DIR, draw_figures, pick_jobs
from orbitcl.experiments.report.summary import LEVEL, summarize
from orbitcl.tracking import plots

log = logging.getLogger(__name__)

CURVE = ("loss", "ntxent")  # without a study: the plane measures the losses against NT-Xent's
PLANE_FILE = "sweep_report_plane.png"


@dataclass
class Evidence:
    study: Study | None
    key: str | None  # the comparison table's key and reference (None: no table)
    reference: Any
    comparisons: list[Comparison] = field(default_factory=list)
    claims: list[ClaimResult] = field(default_factory=list)
    plane: plane_module.Plane | None = None
    plane_plot: Path | None = None
    figure_jobs: dict[str, str] = field(default_factory=dict)  # name -> job, when drawn
    figure_replicate: Any = None  # the replicate value (seed) of the jobs drawn
    figures: list[Path] = field(default_factory=list)
    figures_error: str | None = None

    @property
    def images(self) -> list[Path]:
        pngs = [p for p in self.figures if p.suffix == ".png"]
        return ([self.plane_plot] if self.plane_plot else []) + pngs


def gather(
    sweep_dir: Path,
    keys: list[str],
    jobs: list[dict],
    metrics: Sequence[str],
    study: Study | None,
    x: str,
    replicate: str,
    key: str | None = None,
    reference: Any = None,
    figures: bool | None = None,
    allow: Iterable[str] = (),
) -> Evidence:
    """Computes the comparison table (`key=reference`, else the study's; its metrics the study's
    `report` for the study's own comparison, else `metrics`), the claims, the plane (saved as
    PLANE_FILE) and, when `figures` (None: when the study asks), the figures into `sweep_dir`."""
    if key is None and study is not None:
        key, reference = study.compare, study.reference
    as_study = study is not None and (key, reference) == (study.compare, study.reference)
    # The study's own comparison reports what it declared; any other, the report's columns.
    table_metrics = list(study.report) if as_study and study.report else list(metrics)
    claim_metrics = [c.metric for c in study.claims] if study else []
    needed = list(dict.fromkeys([*table_metrics, *claim_metrics, *plane_module.METRICS]))
    rows = job_rows(keys, jobs, needed)
    against = study.against if as_study else None
    evidence = Evidence(study, key, reference)
    if key is not None:
        evidence.comparisons = compare(
            rows, keys, key, reference, table_metrics, replicate, against
        )
    if study and study.claims:
        table = compare(
            rows, keys, study.compare, study.reference, claim_metrics, replicate, study.against
        )
        evidence.claims = judge_claims(study, table)

    curve_key = study.compare if study else CURVE[0]
    curve = study.curve if study and study.curve is not None else CURVE[1]
    summary = summarize(keys, rows, plane_module.METRICS, replicate)
    evidence.plane = plane_module.plane(summary, keys, x, replicate, curve_key, curve)
    if evidence.plane is not None:
        fig = plane_module.plane_figure(evidence.plane, x, replicate)
        evidence.plane_plot = plots.save(fig, sweep_dir / PLANE_FILE)

    options = (study.figures if study else None) or dict(FIGURE_DEFAULTS)
    draw = figures if figures is not None else bool(study and study.figures)
    if draw:
        evidence.figure_replicate = options["replicate"]
        evidence.figure_jobs = pick_jobs(rows, keys, replicate, options["replicate"])
        try:
            evidence.figures = draw_figures(sweep_dir, evidence.figure_jobs, options, allow)
        except Exception as err:  # the statistics stand without the figures; the report says why
            # No checkpoint (callbacks.checkpoint=null) or a target outside the allow-list is
            # said in a line; anything else with its traceback.
            expected = isinstance(err, FileNotFoundError | ValueError)
            (log.warning if expected else log.exception)("the figures were not drawn: %s", err)
            evidence.figures_error = f"{err.__class__.__name__}: {err}"
    return evidence


# --- Markdown ---------------------------------------------------------------------------------


def markdown(evidence: Evidence, replicate: str, x: str) -> list[str]:
    """The sections: plane, figures, comparisons, claims (the claims' lines last)."""
    out = _plane_section(evidence, replicate, x) + _figures_section(evidence, replicate)
    if evidence.key is not None:
        out += [f"## Comparisons with {evidence.key}={evidence.reference}", ""]
        out += _comparison_table(evidence.comparisons, evidence.reference)
        out += [_rule(evidence.reference, replicate, len(evidence.comparisons), "this table"), ""]
    if evidence.claims:
        out += _claims_section(evidence, replicate)
    return out


def _number(value: float, fmt: str = "+.4g") -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def _context(comparison: Comparison) -> str:
    return ", ".join(f"{k}={v}" for k, v in comparison.context.items())


def _comparison_table(rows: list[Comparison], reference: Any) -> list[str]:
    contexts = any(c.context for c in rows)
    header = ["setting"] + (["where"] if contexts else []) + ["metric"]
    header += [f"{reference} − setting (95% CI)", "test", "n", "effect", "p", "p Holm", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for c in rows:
        d = c.difference
        n = f"{d.n_pairs} pairs" if d.test.startswith("paired") else f"{d.n_reference}+{d.n_other}"
        interval = "" if math.isnan(d.low) else f" [{_number(d.low)}, {_number(d.high)}]"
        effect = f"{d.effect_name} {_number(d.effect, '+.3g')}" if d.effect_name else "-"
        verdict = c.verdict + (f" ({d.note})" if d.note else "")
        cells = [str(c.other)] + ([_context(c)] if contexts else []) + [c.metric]
        cells += [_number(d.mean) + interval, d.test, n, effect, _number(d.p, ".3g")]
        cells += [_number(c.p_holm, ".3g"), verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _rule(reference: Any, replicate: str, m: int, family: str) -> str:
    return (
        f"Each row: {reference}'s value minus the setting's, paired by {replicate} over the "
        f"{replicate}s both finished (paired t, effect size Cohen's d_z) when there are 2 or "
        "more, else Welch's t over all finished runs (effect size Hedges' g); the interval is "
        f"the two-sided {LEVEL:.0%} Student-t interval of the difference, not adjusted. The "
        f"p-values are Holm-adjusted over the {m} comparisons of {family}; verdict: higher or "
        f"lower ({reference}'s value against the setting's) where the adjusted p < {ALPHA}, else "
        "no difference detected at this number of seeds; not resolved without a test (fewer "
        "than 2 runs a side)."
    )


def _claims_section(evidence: Evidence, replicate: str) -> list[str]:
    study = evidence.study
    comparisons = [c for result in evidence.claims for c in result.comparisons]
    out = [f"## Claims: {study.compare}={study.reference} against each other setting", ""]
    out += _comparison_table(comparisons, study.reference)
    out += [_rule(study.reference, replicate, len(comparisons), "the claims (one family)"), ""]
    beside = [c for c in evidence.comparisons if c.metric in study.report]
    if beside and evidence.key == study.compare and evidence.reference == study.reference:
        out += [
            "Reported beside the claims (no direction declared; Holm over the comparison table):",
            "",
        ]
        for metric in study.report:
            rows = [c for c in beside if c.metric == metric]
            out.append(f"- {metric}: " + "; ".join(_evidence_of(c) for c in rows))
        out.append("")
    out += [
        "Verdicts (supported: every comparison significant in the expected direction; "
        "contradicted: any significant in the opposite one; else not resolved):",
        "",
    ]
    for result in evidence.claims:
        out.append(_claim_line(result, study))
    return out + [""]


def _evidence_of(c: Comparison) -> str:
    d = c.difference
    where = f" at {_context(c)}" if c.context else ""
    if d.test == "none":
        return f"{c.other}{where}: {c.verdict} ({d.note})"
    n = f"{d.n_pairs} pairs" if d.test.startswith("paired") else f"n={d.n_reference}+{d.n_other}"
    return (
        f"{c.other}{where}: {_number(d.mean)} [{_number(d.low)}, {_number(d.high)}], {c.verdict} "
        f"({d.test}, {n}, {d.effect_name} {_number(d.effect, '+.3g')}, p Holm "
        f"{_number(c.p_holm, '.3g')})"
    )


def _claim_line(result: ClaimResult, study: Study) -> str:
    claim = result.claim
    others = list(dict.fromkeys(str(c.other) for c in result.comparisons))
    head = (
        f"- **{result.verdict.upper()}**: {claim.metric}, {study.reference} {claim.expect} than "
        f"each of {', '.join(others) or '(none run)'}"
    )
    return head + ": " + "; ".join(_evidence_of(c) for c in result.comparisons)


def _plane_section(evidence: Evidence, replicate: str, x: str) -> list[str]:
    result = evidence.plane
    if result is None:
        return []
    out = ["## Alignment-uniformity plane", "", f"![plane]({PLANE_FILE})", ""]
    if result.curve is None:
        return out + ["No temperature curve to place the settings against.", ""]
    by_line: dict[str, list] = {}
    for placement in result.placements:
        by_line.setdefault(placement.line, []).append(placement)
    for line, placements in by_line.items():
        out.append(f"- {_line_sentence(line, placements, result.curve, x)}")
        for p in placements:
            where = f"{x}={p.point.x}" if p.point.x is not None else "its point"
            detail = {
                plane_module.ON: "on the curve",
                plane_module.BELOW: f"below the curve by {_number(p.offset)} in alignment",
                plane_module.ABOVE: f"above the curve by {_number(p.offset)} in alignment",
                plane_module.BEYOND: f"beyond the curve: {p.note}",
                plane_module.UNRESOLVED: f"not resolved: {p.note}",
            }[p.kind]
            out.append(f"  - {where}: {detail}")
    out += [
        "",
        f"Rule: a point is on {result.curve}'s temperature curve when its box (uniformity and "
        f"alignment, each mean ± {LEVEL:.0%} CI over {replicate}) meets the band joining the "
        "boxes of consecutive temperatures (their convex hulls); otherwise it lies below (lower "
        "alignment at the same uniformity) or above the curve, by its alignment minus the "
        "curve's interpolated at its uniformity, or beyond the temperatures run.",
        "",
    ]
    return out


def _line_sentence(line: str, placements: list, curve: str, x: str) -> str:
    kind = plane_module.line_verdict(placements)
    if kind == plane_module.ON:
        return (
            f"**{line}** lies on {curve}'s temperature curve at every {x} run, within seed "
            f"noise: it acts like a temperature."
        )
    if kind in (plane_module.BELOW, plane_module.ABOVE):
        side = "lower" if kind == plane_module.BELOW else "higher"
        return (
            f"**{line}** lies off {curve}'s temperature curve, {kind} it ({side} alignment at the "
            f"same uniformity): something no temperature of {curve} does."
        )
    if {p.kind for p in placements} == {plane_module.BEYOND}:
        return (
            f"**{line}**: not resolved, its uniformity lies beyond what {curve} reaches at the "
            f"{x} run: sweep a wider range."
        )
    return f"**{line}**: not resolved against {curve}'s temperature curve."


def _figures_section(evidence: Evidence, replicate: str) -> list[str]:
    if not evidence.figure_jobs and not evidence.figures_error:
        return []
    out = ["## Figures", ""]
    picked = ", ".join(f"{name} (`{job}`)" for name, job in evidence.figure_jobs.items())
    out += [
        f"One checkpoint per setting ({replicate}={evidence.figure_replicate}, else the "
        f"setting's first finished job): {picked}.",
        "",
    ]
    if evidence.figures_error:
        return out + [f"Not drawn: {evidence.figures_error}", ""]
    out += [f"![{p.stem}]({FIGURES_DIR}/{p.name})" for p in evidence.figures if p.suffix == ".png"]
    files = ", ".join(f"`{FIGURES_DIR}/{p.name}`" for p in evidence.figures)
    return out + ["", f"Files: {files}.", ""]

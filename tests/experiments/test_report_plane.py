"""The alignment-uniformity plane: where a point lies against a temperature curve, on points
whose geometry is worked out by hand."""

import math

import pytest

from orbitcl.experiments.report import plane as pl

# NT-Xent at two temperatures: (uniformity, alignment) = (-3, 0.2) and (-2, 0.6), each +- 0.01.
CURVE = [pl.Point(0.2, -3.0, 0.01, 0.2, 0.01), pl.Point(1.0, -2.0, 0.01, 0.6, 0.01)]


def point(u: float, a: float, ci: float = 0.01) -> pl.Point:
    return pl.Point(0.5, u, ci, a, ci)


def test_a_point_on_the_segment_is_on_the_curve():
    assert pl.place("orl", point(-2.5, 0.4), CURVE).kind == pl.ON  # the segment's middle
    # The band's lower edge runs from (-2.99, 0.19) to (-1.99, 0.59), slope 0.4. At u = -2.51,
    # the left side of a box around u = -2.5 with half-width 0.01, it is 0.19 + 0.4 x 0.48 =
    # 0.382: a box reaching up to 0.383 meets it ...
    assert pl.place("orl", point(-2.5, 0.373), CURVE).kind == pl.ON
    # ... and one reaching up to 0.381 does not.
    low = pl.place("orl", point(-2.5, 0.371), CURVE)
    assert low.kind == pl.BELOW
    assert low.offset == pytest.approx(0.371 - 0.4, abs=1e-12)  # against the mean curve


def test_a_point_off_the_curve_is_below_or_above_by_its_alignment_gap():
    below = pl.place("orl", point(-2.5, 0.2), CURVE)
    assert (below.kind, below.offset) == (pl.BELOW, pytest.approx(-0.2))
    above = pl.place("orl", point(-2.75, 0.6), CURVE)  # curve: 0.2 + 0.25 x 0.4 = 0.3
    assert (above.kind, above.offset) == (pl.ABOVE, pytest.approx(0.3))


def test_what_cannot_be_placed():
    beyond = pl.place("orl", point(-1.0, 0.9), CURVE)
    assert beyond.kind == pl.BEYOND and "[-3, -2]" in beyond.note
    one_seed = pl.place("orl", point(-2.5, 0.2, ci=math.nan), CURVE)
    assert one_seed.kind == pl.UNRESOLVED and "one seed" in one_seed.note
    one_temperature = pl.place("orl", point(-2.5, 0.2), CURVE[:1])
    assert one_temperature.kind == pl.UNRESOLVED


def test_a_line_is_judged_by_all_its_points():
    on = pl.place("orl", point(-2.5, 0.4), CURVE)
    below = pl.place("orl", point(-2.5, 0.2), CURVE)
    beyond = pl.place("orl", point(-1.0, 0.9), CURVE)
    assert pl.line_verdict([on, on]) == pl.ON
    assert pl.line_verdict([below, on]) == pl.BELOW  # off the curve somewhere: not a temperature
    assert pl.line_verdict([on, beyond]) == pl.UNRESOLVED


def summary_row(loss: str, temperature: float, u: float, a: float, ci: float = 0.01) -> dict:
    return {"loss": loss, "loss.temperature": temperature} | {
        pl.UNIFORMITY: u,
        f"{pl.UNIFORMITY} ci95": ci,
        pl.ALIGNMENT: a,
        f"{pl.ALIGNMENT} ci95": ci,
    }


def test_the_plane_of_a_summary_places_each_loss_against_the_curve():
    summary = [
        summary_row("ntxent", 1.0, -2.0, 0.6),  # out of temperature order: sorted by it
        summary_row("ntxent", 0.2, -3.0, 0.2),
        summary_row("orl", 0.2, -2.5, 0.4),
        summary_row("orl", 1.0, -2.5, 0.2),
        summary_row("other", 0.2, math.nan, math.nan),  # not logged: no point
    ]
    keys = ["loss", "loss.temperature", "seed"]
    result = pl.plane(summary, keys, "loss.temperature", "seed", "loss", "ntxent")
    assert list(result.lines) == ["ntxent", "orl"] and result.curve == "ntxent"
    assert [p.x for p in result.lines["ntxent"]] == [0.2, 1.0]
    assert [(p.point.x, p.kind) for p in result.placements] == [(0.2, pl.ON), (1.0, pl.BELOW)]
    fig = pl.plane_figure(result, "loss.temperature", "seed")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ntxent", "orl"]
    assert list(ax.lines[0].get_xdata()) == [-3.0, -2.0]  # NT-Xent's curve, by temperature
    # Without NT-Xent in the sweep there is no curve: drawn, not placed.
    no_curve = pl.plane(summary[2:], keys, "loss.temperature", "seed", "loss", "ntxent")
    assert no_curve.curve is None and no_curve.placements == []

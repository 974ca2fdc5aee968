"""orbitcl.experiments.report.compare: paired and Welch differences, their Student-t intervals,
effect sizes, Holm's correction and the verdicts, against values computed by hand.

With 3 seeds (2 degrees of freedom) Student's t has a closed form: P(|T| > t) = 1 - t /
sqrt(t^2 + 2), so the paired cases need no table."""

import math

import pytest

from orbitcl.experiments.report import compare as cmp

T975 = {1: 12.706204736174707, 2: 4.302652729749464}  # two-sided 95% quantiles, printed tables


def p_two_dof(t: float) -> float:
    return 1 - abs(t) / math.sqrt(t * t + 2)


def test_a_real_paired_difference():
    # Orbit variance of ORL and of NT-Xent over seeds 0, 1, 2: d = ref - other = -0.10, -0.11,
    # -0.09; mean -0.10, deviations 0, -0.01, 0.01, s^2 = 0.0002 / 2, s = 0.01.
    d = cmp.difference({0: 0.10, 1: 0.12, 2: 0.11}, {0: 0.20, 1: 0.23, 2: 0.20})
    assert (d.test, d.n_pairs, d.n_reference, d.n_other) == (cmp.PAIRED, 3, 3, 3)
    assert d.mean == pytest.approx(-0.10, abs=1e-15)
    se = 0.01 / math.sqrt(3)
    assert d.low == pytest.approx(-0.10 - T975[2] * se, rel=1e-9)
    assert d.high == pytest.approx(-0.10 + T975[2] * se, rel=1e-9)
    t = -0.10 / se  # -17.32
    assert d.p == pytest.approx(p_two_dof(t), rel=1e-9)  # 0.0033
    assert d.effect == pytest.approx(-10.0, rel=1e-9) and d.effect_name == "d_z"
    assert cmp.verdict(d, d.p) == cmp.LOWER  # the reference's value is lower


def test_noise_is_no_difference():
    # d = 0.05, -0.15, 0.13: mean 0.01, deviations 0.04, -0.16, 0.12, s^2 = 0.0416 / 2.
    d = cmp.difference({0: 0.55, 1: 0.40, 2: 0.63}, {0: 0.50, 1: 0.55, 2: 0.50})
    s = math.sqrt(0.0208)
    assert d.mean == pytest.approx(0.01, abs=1e-12)
    assert d.high - d.mean == pytest.approx(T975[2] * s / math.sqrt(3), rel=1e-9)
    assert d.p == pytest.approx(p_two_dof(0.01 / (s / math.sqrt(3))), rel=1e-9)  # 0.915
    assert d.low < 0 < d.high
    assert cmp.verdict(d, d.p) == cmp.NO_DIFFERENCE


def test_pairs_are_the_seeds_both_have():
    # Seed 2 of the other setting failed: paired over seeds 0 and 1 only, d = 0.2, 0.4.
    d = cmp.difference({0: 1.2, 1: 1.4, 2: 9.0}, {0: 1.0, 1: 1.0})
    assert (d.test, d.n_pairs, d.n_reference, d.n_other) == (cmp.PAIRED, 2, 3, 2)
    assert d.mean == pytest.approx(0.3)
    s = math.sqrt(2 * 0.1**2)  # deviations +-0.1, one degree of freedom
    assert d.high == pytest.approx(0.3 + T975[1] * s / math.sqrt(2), rel=1e-9)
    assert d.effect == pytest.approx(0.3 / s, rel=1e-9)


def test_welch_without_common_seeds():
    # x = 1, 2, 3 (mean 2, s^2 1); y = 4, 6 (mean 5, s^2 2): se^2 = 1/3 + 2/2 = 4/3,
    # Welch-Satterthwaite dof = (4/3)^2 / ((1/3)^2 / 2 + 1^2 / 1) = 32/19.
    d = cmp.difference({0: 1.0, 1: 2.0, 2: 3.0}, {3: 4.0, 4: 6.0})
    assert (d.test, d.n_pairs) == (cmp.WELCH, 0)
    assert d.mean == -3.0
    from scipy import stats

    dof, se = 32 / 19, math.sqrt(4 / 3)
    assert d.p == pytest.approx(2 * stats.t.sf(3 / se, dof), rel=1e-9)
    assert d.high == pytest.approx(-3 + stats.t.ppf(0.975, dof) * se, rel=1e-9)
    # Hedges' g: pooled s^2 = (2 x 1 + 1 x 2) / 3 = 4/3, correction 1 - 3 / (4 x 5 - 9) = 8/11.
    assert d.effect == pytest.approx(8 / 11 * -3 / math.sqrt(4 / 3), rel=1e-9)
    assert d.effect_name == "g"


def test_edge_cases_one_seed_zero_variance_missing():
    one = cmp.difference({0: 0.5}, {0: 0.4})  # one seed: no interval, no test
    assert one.test == cmp.NO_TEST and math.isnan(one.low) and math.isnan(one.p)
    assert one.mean == pytest.approx(0.1) and "no interval" in one.note
    assert cmp.verdict(one, math.nan) == cmp.NOT_RESOLVED
    missing = cmp.difference({0: 0.5, 1: 0.6}, {0: None, 1: math.nan})
    assert missing.test == cmp.NO_TEST and "no value" in missing.note
    # Every difference exactly 0.5: certain (p = 0), the interval a point.
    constant = cmp.difference({0: 1.5, 1: 2.5}, {0: 1.0, 1: 2.0})
    assert (constant.p, constant.low, constant.high) == (0.0, 0.5, 0.5)
    assert constant.note == "zero variance" and cmp.verdict(constant, 0.0) == cmp.HIGHER
    same = cmp.difference({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert same.p == 1.0 and cmp.verdict(same, 1.0) == cmp.NO_DIFFERENCE


def test_holm_step_down():
    # m = 3 finite p-values: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06.
    adjusted = cmp.holm([0.04, 0.01, math.nan, 0.03])
    assert adjusted[:2] == pytest.approx([0.06, 0.03]) and adjusted[3] == pytest.approx(0.06)
    assert math.isnan(adjusted[2])
    assert cmp.holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1


def rows_of(values: dict, metric: str = "m") -> list[dict]:
    """Job rows of a sweep over loss and seed: {(loss, temperature): [value per seed]}."""
    rows = []
    for (loss, temperature), seeds in values.items():
        for seed, value in enumerate(seeds):
            status = "failed" if value == "failed" else "ok"
            row = {"job": f"{loss}-{temperature}-{seed}", "loss": loss, "seed": seed}
            row |= {"loss.temperature": temperature, "status": status}
            rows.append(row | {metric: None if status == "failed" else value})
    return rows


def test_a_table_is_one_holm_family_and_each_context_is_compared_within_itself():
    rows = rows_of(
        {
            ("orl", 0.5): [0.10, 0.12, 0.11],
            ("ntxent", 0.5): [0.20, 0.23, 0.20],  # real: p = 0.0033 alone
            ("mean", 0.5): [0.11, 0.14, "failed"],  # 2 pairs: d = -0.01, -0.02
            ("ntxent", 1.0): [0.3, 0.3, 0.3],  # no ORL at this temperature
        }
    )
    keys = ["loss", "loss.temperature", "seed"]
    table = cmp.compare(rows, keys, "loss", "orl", ["m"])
    got = {(c.context["loss.temperature"], c.other): c for c in table}
    assert list(got) == [(0.5, "ntxent"), (0.5, "mean"), (1.0, "ntxent")]
    real, two_pairs, alone = got[(0.5, "ntxent")], got[(0.5, "mean")], got[(1.0, "ntxent")]
    assert alone.verdict == cmp.NOT_RESOLVED and alone.difference.n_reference == 0
    # Two tests in the family: Holm multiplies the smaller p by 2, the larger by 1 (at least
    # the smaller's adjusted value).
    p_real = p_two_dof(-0.10 / (0.01 / math.sqrt(3)))
    s = math.sqrt(2 * 0.005**2)  # d = -0.01, -0.02: mean -0.015, deviations +-0.005
    t = -0.015 / (s / math.sqrt(2))  # -3, one degree of freedom: p = 1 - 2 atan(3) / pi
    p_pairs = 1 - 2 * math.atan(abs(t)) / math.pi
    assert two_pairs.difference.p == pytest.approx(p_pairs, rel=1e-9)
    assert real.p_holm == pytest.approx(2 * p_real, rel=1e-9)
    assert two_pairs.p_holm == pytest.approx(max(2 * p_real, p_pairs), rel=1e-9)
    assert real.verdict == cmp.LOWER and two_pairs.verdict == cmp.NO_DIFFERENCE
    # `against` names the settings; one never run is a row that cannot be resolved.
    named = cmp.compare(rows, keys, "loss", "orl", ["m"], against=["ntxent", "shuffled"])
    assert [(c.other, c.verdict) for c in named if c.context["loss.temperature"] == 0.5] == [
        ("ntxent", cmp.LOWER),
        ("shuffled", cmp.NOT_RESOLVED),
    ]


def test_holm_can_take_a_verdict_back():
    # d = -0.10, -0.12, -0.14: t = -0.12 / (0.02 / sqrt(3)) = -10.39, p = 0.0091 < 0.05 alone;
    # beside 9 tests that find nothing (p ~ 1), Holm multiplies it by 10: 0.091.
    values = {("orl", 0.5): [0.10, 0.12, 0.14], ("ntxent", 0.5): [0.20, 0.24, 0.28]}
    rows = rows_of(values)
    for metric in [f"noise{i}" for i in range(9)]:
        for row in rows:  # differences -0.01, 0, 0.01 by seed: mean 0
            row[metric] = [0.3, 0.1, 0.2][row["seed"]]
            row[metric] += 0.01 * (row["seed"] - 1) if row["loss"] == "orl" else 0.0
    p = p_two_dof(-0.12 / (0.02 / math.sqrt(3)))
    assert p < 0.05 < 10 * p
    alone = cmp.compare(rows, ["loss", "seed"], "loss", "orl", ["m"])
    assert alone[0].verdict == cmp.LOWER
    metrics = ["m"] + [f"noise{i}" for i in range(9)]
    crowded = cmp.compare(rows, ["loss", "seed"], "loss", "orl", metrics)
    assert crowded[0].difference.p == pytest.approx(p, rel=1e-9)
    assert crowded[0].p_holm == pytest.approx(10 * p, rel=1e-9)
    assert crowded[0].verdict == cmp.NO_DIFFERENCE

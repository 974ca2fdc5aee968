"""A study's declaration (`study:`) checked field by field, and the claims' verdicts."""

import pytest

from orbitcl.experiments.report import compare as cmp
from orbitcl.experiments.report.claims import (
    CONTRADICTED,
    SUPPORTED,
    UNRESOLVED,
    Claim,
    StudyError,
    judge,
    parse_study,
)

SWEPT = {"loss": ["ntxent", "orl", "orl_mean_tension"], "seed": [0, 1, 2]}
STUDY = {
    "compare": "loss",
    "reference": "orl",
    "claims": [{"metric": "orbit/variance", "expect": "lower"}],
    "report": ["geometry/uniformity"],
}


def test_a_study_parses_with_its_defaults():
    study = parse_study(STUDY, SWEPT)
    assert (study.compare, study.reference, study.against) == ("loss", "orl", None)
    assert study.claims == [Claim("orbit/variance", "lower")]
    assert study.report == ["geometry/uniformity"] and study.figures is None
    assert parse_study(None, SWEPT) is None
    figures = parse_study(STUDY | {"figures": {"umap_images": 20}}, SWEPT).figures
    assert figures == {
        "replicate": 0,
        "anchors": 200,
        "views": 10,
        "umap_images": 20,
        "umap_views": 5,
    }


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"compare": "dataset"},
            "study.compare='dataset' is invalid: must be a key the sweep varies (loss, seed)",
        ),
        (
            {"reference": "orll"},
            "study.reference='orll' is invalid: must be one of the values of "
            "loss the sweep runs (ntxent, orl, orl_mean_tension)",
        ),
        ({"against": ["ntxent", "shuffled"]}, "study.against[1]='shuffled' is invalid"),
        ({"against": ["orl"]}, "study.against[0]='orl' is invalid: it is the reference"),
        (
            {"claims": [{"metric": "orbit/variance", "expect": "smaller"}]},
            "study.claims[0].expect='smaller' is invalid: must be higher or lower",
        ),
        ({"claims": [{"metric": "orbit/variance"}]}, "study.claims[0]="),
        ({"claims": "orbit/variance"}, "study.claims='orbit/variance' is invalid: must be a list"),
        ({"curve": "simclr"}, "study.curve='simclr' is invalid"),
        (
            {"figures": {"anchors": 0}},
            "study.figures.anchors=0 is invalid: must be an integer >= 1",
        ),
        ({"figures": {"bins": 3}}, "study.figures.bins is not an option"),
        ({"claim": []}, "study.claim is not a field of a study; the fields are compare, "),
    ],
)
def test_a_bad_study_names_the_field_the_value_and_what_is_allowed(change, message):
    with pytest.raises(StudyError) as err:
        parse_study(STUDY | change, SWEPT)
    assert message in str(err.value)


def test_a_missing_reference_is_named():
    with pytest.raises(StudyError, match="study.reference is missing"):
        parse_study({"compare": "loss"}, SWEPT)


def row(verdict: str, other: str = "ntxent") -> cmp.Comparison:
    diff = cmp.difference({0: 1.0}, {0: 1.0})  # the statistics do not enter the judgement
    return cmp.Comparison({}, other, "orbit/variance", diff, 0.01, verdict)


def test_a_claim_holds_only_when_every_comparison_does():
    lower = Claim("orbit/variance", cmp.LOWER)
    assert judge(lower, [row(cmp.LOWER), row(cmp.LOWER, "mean")]) == SUPPORTED
    assert judge(lower, [row(cmp.LOWER), row(cmp.NO_DIFFERENCE, "mean")]) == UNRESOLVED
    assert judge(lower, [row(cmp.LOWER), row(cmp.NOT_RESOLVED, "mean")]) == UNRESOLVED
    assert judge(lower, [row(cmp.LOWER), row(cmp.HIGHER, "mean")]) == CONTRADICTED
    assert judge(lower, []) == UNRESOLVED  # nothing compared supports nothing
    assert judge(Claim("orbit/anchor_view_cos", cmp.HIGHER), [row(cmp.HIGHER)]) == SUPPORTED

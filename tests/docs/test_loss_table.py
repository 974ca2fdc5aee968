"""The site's loss table is generated from conf/loss/*.yaml and the classes they target
(docs/hooks/loss_table.py): every such class declares its paper and its formula, the dotted
path of a pure function that exists, and the table has a row for every config."""

import importlib.util
import inspect

import pytest
from helpers.paths import ROOT

from orbitcl.losses.base import Loss


def hook():
    spec = importlib.util.spec_from_file_location("loss_table", ROOT / "docs/hooks/loss_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLE = hook()
CONFIGS = TABLE.loss_configs()


def test_every_loss_config_is_found():
    names = sorted(p.stem for p in (ROOT / "src/orbitcl/conf/loss").glob("*.yaml"))
    assert [entry["name"] for entry in CONFIGS] == names
    assert {"ntxent", "orl", "orl_detached", "moco_orl"} <= set(names)
    detached = next(entry for entry in CONFIGS if entry["name"] == "orl_detached")
    assert detached["base"] == "orl" and detached["sets"] == {"detach_tension": True}


def problems(cls) -> list[str]:
    """What the table needs of a loss class and it lacks."""
    declared = vars(cls)  # on the class itself: a subclass must not inherit its parent's
    out = []
    if not (isinstance(declared.get("paper"), str) and declared["paper"].strip()):
        out.append(f"{cls.__name__} declares no paper")
    if not isinstance(declared.get("formula"), str):
        out.append(f"{cls.__name__} declares no formula")
    else:
        try:
            if not inspect.isfunction(TABLE.resolve(declared["formula"])):
                out.append(f"{cls.__name__}.formula names no function")
        except (ImportError, AttributeError) as err:
            out.append(f"{cls.__name__}.formula does not import: {err}")
    if not TABLE.summary(cls).strip(". "):
        out.append(f"{cls.__name__} has no docstring")
    return out


@pytest.mark.parametrize("entry", CONFIGS, ids=lambda entry: entry["name"])
def test_each_target_declares_its_paper_and_a_formula_that_imports(entry):
    cls = TABLE.resolve(entry["target"])
    assert issubclass(cls, Loss), entry["target"]
    assert problems(cls) == []


def test_a_class_without_them_or_with_a_wrong_path_is_caught():
    from orbitcl.losses.dcl import DCLLoss

    class Bare(DCLLoss):  # inherits DCL's paper and formula, declares neither
        """A loss."""

    class WrongPath(DCLLoss):
        """A loss."""

        paper = "Someone 2025"
        formula = "orbitcl.losses.dcl.no_such_function"

    assert problems(Bare) == ["Bare declares no paper", "Bare declares no formula"]
    assert problems(WrongPath) == [
        "WrongPath.formula does not import: module 'orbitcl.losses.dcl' has no attribute "
        "'no_such_function'"
    ]


def test_table_rows_say_what_each_loss_is_and_needs():
    rows = {row[0]: row for row in TABLE.rows()}
    assert len(rows) == len(CONFIGS)
    assert rows["`loss=supcon`"][3] == "`labels`, `class_count`"
    assert rows["`loss=y_aware`"][3] == "`labels`, `continuous_labels`"
    assert rows["`loss=moco`"][3] == "`momentum_keys`, `key_queue`"
    assert rows["`loss=ntxent`"][3] == "none"
    assert "orbitcl.losses.functional.ntxent" in rows["`loss=ntxent`"][2]
    assert rows["`loss=orl_detached`"][1].count("`detach_tension=true`") == 1
    assert "Chen" in rows["`loss=ntxent`"][4]


def test_the_api_page_documents_every_loss_configs_modules_without_a_hand_kept_line():
    api = (ROOT / "docs/api.md").read_text()
    assert TABLE.API_MARKER in api
    generated = TABLE.loss_modules(api)
    for entry in TABLE.loss_configs():
        cls = TABLE.resolve(entry["target"])
        module = cls.__module__
        assert module in generated or f"::: {module}\n" in api, module
    assert "orbitcl.losses.vicreg" in generated and "orbitcl.losses.functional" not in generated
    # a page listing a module itself keeps it out of the generated blocks (no duplicate anchors)
    assert "orbitcl.losses.vicreg" not in TABLE.loss_modules("::: orbitcl.losses.vicreg\n")

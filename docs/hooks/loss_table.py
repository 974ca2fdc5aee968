"""MkDocs hook: the loss table of docs/losses.md, generated at build time, never hand-kept.

One row per `src/orbitcl/conf/loss/NAME.yaml`: the name (`loss=NAME`), the first sentence of
the docstring of the class its `_target_` names (a config that starts from another loss's,
`defaults: [orl, _self_]`, says which and what it sets), the class's `formula` (the dotted path
of its pure function), the fields of its `needs` that are true, and its `paper`. The page holds
the marker `<!-- loss-table -->` where the table goes.
"""

import importlib
import re
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
MARKER = "<!-- loss-table -->"
API_MARKER = "<!-- loss-modules -->"  # api.md: the reference of every loss config's modules
SENTENCE_END = re.compile(r"\.(?=\s+[A-Z(]|\s*$)")  # "eq. 2" and "et al.," do not end one
CITATION = re.compile(
    r"\s*\([^()]*\b(19|20)\d\d\b[^()]*\)"
)  # "(Wang and Isola, ..., 2020)": the paper column has it


def _import_orbitcl() -> None:
    """The docs describe this checkout's code: its src/ goes first on the path."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


def resolve(dotted: str):
    """The object at a dotted path, `package.module.name`."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def loss_configs(conf_dir: Path | None = None) -> list[dict]:
    """One entry per loss config: name, target class, and for a config built on another loss's,
    that loss's name and the keys it sets (`base`, `sets`)."""
    from omegaconf import OmegaConf

    _import_orbitcl()
    from orbitcl import CONF_DIR

    conf_dir = conf_dir or CONF_DIR / "loss"
    raw = {
        path.stem: OmegaConf.to_container(OmegaConf.load(path)) for path in conf_dir.glob("*.yaml")
    }
    entries = []
    for name in sorted(raw):
        base, sets, current = None, {}, raw[name]
        while "_target_" not in current:  # follow `defaults: [other, _self_]` down to a target
            parents = [d for d in current.get("defaults", []) if d != "_self_"]
            if len(parents) != 1 or parents[0] not in raw:
                raise ValueError(f"conf/loss/{name}.yaml names no _target_ and no one base loss")
            base = base or parents[0]
            sets = {k: v for k, v in current.items() if k != "defaults"} | sets
            current = raw[parents[0]]
        entries.append({"name": name, "target": current["_target_"], "base": base, "sets": sets})
    return entries


def summary(cls: type) -> str:
    """The docstring's first sentence, on one line, in Markdown's code spans."""
    paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
    text = CITATION.sub("", " ".join(paragraph.split()).replace("``", "`"))
    match = SENTENCE_END.search(text)
    text = text[: match.start()] if match else text
    return text.rstrip(":,. ") + "."


def yaml_value(value) -> str:
    """A config value as it is typed on the command line (`true`, not `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def needs(cls: type) -> str:
    """The fields of the class's `needs` (losses.base.Needs) that are true."""
    declared = cls.needs
    true = [f.name for f in fields(declared) if getattr(declared, f.name)]
    return ", ".join(f"`{name}`" for name in true) or "none"


def rows() -> list[list[str]]:
    out = []
    for entry in loss_configs():
        cls = resolve(entry["target"])
        what = summary(cls).replace("|", "\\|")
        if entry["base"]:
            sets = ", ".join(f"`{k}={yaml_value(v)}`" for k, v in entry["sets"].items())
            what = f"`loss={entry['base']}` with {sets}: {what}"
        formula = getattr(cls, "formula", "")
        out.append(
            [
                f"`loss={entry['name']}`",
                f"[`{cls.__name__}`][{cls.__module__}.{cls.__qualname__}]: {what}",
                f"[`{formula}`][{formula}]" if formula else "(none declared)",
                needs(cls),
                getattr(cls, "paper", "(none declared)"),
            ]
        )
    return out


def loss_table() -> str:
    header = ["name", "what it is", "formula", "needs", "paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows()]
    return "\n".join(lines)


def loss_modules(listed: str = "") -> list[str]:
    """The modules of every config's loss class and formula, in config order, less those that
    `listed` (a page's markdown) already documents with `::: module`: the API page's reference
    of the losses, so that a new loss needs no line there."""
    modules = []
    for entry in loss_configs():
        cls = resolve(entry["target"])
        formula = getattr(cls, "formula", "")
        for module in (cls.__module__, formula.rpartition(".")[0]):
            if module and module not in modules and f"::: {module}\n" not in listed:
                modules.append(module)
    return modules


def on_page_markdown(markdown: str, page, config, files) -> str:
    if API_MARKER in markdown:
        blocks = "\n\n".join(f"::: {module}" for module in loss_modules(markdown))
        markdown = markdown.replace(API_MARKER, blocks)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, loss_table())

"""Every command the docs and the README show still works as written, so that a renamed key
breaks this test and not a reader: each `python -m orbitcl.X ...`, `orbitcl-train ...` and
`make train ARGS="..."` is taken from docs/**/*.md and README.md and its config composed, in
seconds, without training.

- `orbitcl.train` and `orbitcl-train`: the Trainer-key check of the command line, then Hydra's
  compose API on conf/train.yaml with the command's overrides (the hydra node included, so
  launcher and sweeper keys count). A sweep (`loss=ntxent,orl`) composes once per value, the
  other keys at their first; a search range (`interval(...)`) at its start.
- `orbitcl.optimum`: the compose API on conf/optimum.yaml.
- The argparse entry points (evaluate, analyze, report, export, data.stats): their own parser,
  run on the command's arguments and stopped right after parsing (paths need not exist).

Commands that need what a reader brings (their own config folder: `--config-dir`,
`hydra.searchpath`) or a Hydra plugin that is not installed (the joblib launcher) are listed
apart and must stay few; tests/packaging/test_user_configs.py runs the user-folder layout.
"""

import argparse
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
from dataclasses import dataclass
from functools import cache

import pytest
from helpers.paths import CONF_DIR, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep

ARGPARSE_ENTRY_POINTS = {
    "orbitcl.evaluate",
    "orbitcl.analyze",
    "orbitcl.report",
    "orbitcl.export",
    "orbitcl.compare",
    "orbitcl.data.stats",
}
SHELL_STOPS = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&"}
# A launcher option -> the module its Hydra plugin installs.
PLUGINS = {"hydra/launcher=joblib": "hydra_plugins.hydra_joblib_launcher"}
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
MARKERS = ("orbitcl.", "orbitcl-train", "make train")


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str
    module: str  # orbitcl.train, orbitcl.evaluate, ...
    args: tuple[str, ...]


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets(text: str):
    """(line number, text) of each shell line of the fenced blocks (continuations joined) and
    of each inline code span."""
    in_fence, pending, start = False, "", 0
    prose = []
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            prose.append((n, line))
            continue
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    # Inline spans may wrap across lines of a paragraph.
    lines = [line for _, line in prose]
    numbers = [n for n, _ in prose]
    joined = "\n".join(lines)
    for match in INLINE.finditer(joined):
        yield numbers[joined.count("\n", 0, match.start())], " ".join(match.group(1).split())


def parse(where: str, text: str) -> Command | None:
    if not any(marker in text for marker in MARKERS):
        return None
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:
        return None
    for i, token in enumerate(tokens):
        if token == "-m" and i + 1 < len(tokens) and tokens[i + 1].startswith("orbitcl."):
            module, rest = tokens[i + 1], tokens[i + 2 :]
            break
        if token == "orbitcl-train":
            module, rest = "orbitcl.train", tokens[i + 1 :]
            break
        if token == "make" and tokens[i + 1 : i + 2] == ["train"]:
            values = [t[len("ARGS=") :] for t in tokens[i + 2 :] if t.startswith("ARGS=")]
            module, rest = "orbitcl.train", shlex.split(values[0]) if values else []
            break
    else:
        return None
    args = []
    for token in rest:
        if token in SHELL_STOPS:
            break
        if token not in ("...", "\\"):
            args.append(token)
    return Command(where, text.strip(), module, tuple(args))


def documented_commands() -> list[Command]:
    commands = []
    for path in doc_files():
        for line, text in snippets(path.read_text()):
            command = parse(f"{path.relative_to(ROOT)}:{line}", text)
            if command:
                commands.append(command)
    return commands


def needs_the_reader(command: Command) -> str | None:
    """Why a command cannot be composed here, or None."""
    for arg in command.args:
        if arg in ("--config-dir", "-cd") or arg.startswith(("--config-dir=", "hydra.searchpath=")):
            return "composes the reader's own config folder"
        module = PLUGINS.get(arg)
        if (
            module
            and importlib.util.find_spec(module.rsplit(".", 1)[0])
            and not (importlib.util.find_spec(module))
        ):
            return f"{arg} needs a Hydra plugin that is not installed ({module})"
    return None


def variants(args: list[str]) -> list[list[str]]:
    """The override lists that cover a sweep: all keys at their first value, then each other
    value of each swept key in turn."""
    overrides = OverridesParser.create().parse_overrides(args)
    choices = []
    for arg, override in zip(args, overrides, strict=True):
        key = arg.split("=", 1)[0]
        if not override.is_sweep_override():
            choices.append([arg])
        elif isinstance(override.value(), IntervalSweep):
            choices.append([f"{key}={override.value().start}"])
        else:
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    first = [options[0] for options in choices]
    out = [first]
    for i, options in enumerate(choices):
        out += [first[:i] + [value] + first[i + 1 :] for value in options[1:]]
    return out


@cache
def composed(config: str, overrides: tuple[str, ...]) -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        compose(config, overrides=list(overrides), return_hydra_config=config == "train")


class _Parsed(Exception):
    pass


def parse_arguments(module_name: str, args: list[str]) -> None:
    """Runs the entry point's own parser on `args` and stops right after it; raises
    SystemExit (with argparse's message on stderr) on a bad argument."""
    module = importlib.import_module(module_name)
    original = argparse.ArgumentParser.parse_args

    def parse_only(self, argv=None, namespace=None):
        original(self, argv, namespace)
        raise _Parsed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
        try:
            module.main(list(args))
        except _Parsed:
            return
    raise AssertionError(f"{module_name}.main did not parse its arguments")


def check(command: Command) -> str | None:
    """None if the command's config composes (or its arguments parse), else why not."""
    args = [a for a in command.args if a not in ("-m", "--multirun")]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            if command.module == "orbitcl.train":
                from orbitcl.train import check_trainer_keys

                check_trainer_keys(args)
                for overrides in variants(args):
                    composed("train", tuple(overrides))
            elif command.module == "orbitcl.optimum":
                composed("optimum", tuple(args))
            elif command.module in ARGPARSE_ENTRY_POINTS:
                parse_arguments(command.module, args)
            else:
                return f"{command.module} is no orbitcl entry point"
    except SystemExit as err:
        return f"exit status {err.code}: {stderr.getvalue().strip()[-500:]}"
    except Exception as err:  # Hydra's errors: a missing key, option or group
        return f"{type(err).__name__}: {str(err).strip()[:500]}"
    return None


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_entry_point():
    modules = {command.module for command in COMMANDS}
    assert {"orbitcl.train", "orbitcl.optimum", *ARGPARSE_ENTRY_POINTS} <= modules, modules
    assert len(COMMANDS) >= 60, len(COMMANDS)
    apart = [c for c in COMMANDS if needs_the_reader(c)]
    assert len(apart) <= 4, [(c.where, c.text) for c in apart]  # your own configs, joblib


def test_every_documented_command_composes():
    failures = []
    for command in COMMANDS:
        if needs_the_reader(command):
            continue
        problem = check(command)
        if problem:
            failures.append(f"{command.where}: {command.text}\n    {problem}")
    assert not failures, f"{len(failures)} documented commands fail:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("python -m orbitcl.train loss.temprature=0.1", "temprature"),
        ("python -m orbitcl.train -m loss=ntxent,hinge", "hinge"),
        ("python -m orbitcl.train trainer.limit_train_batchez=2", "limit_train_batches"),
        ("python -m orbitcl.optimum loss=supcon dims=8", "dims"),
        ("python -m orbitcl.evaluate RUN --knn-kk 10", "--knn-kk"),
        ("python -m orbitcl.analyze RUN", "--out"),
        ("python -m orbitcl.trian loss=orl", "no orbitcl entry point"),
    ],
)
def test_a_wrong_command_fails(text, problem):
    command = parse("here", text)
    assert command is not None
    failure = check(command)
    assert failure is not None and problem in failure, failure


def test_commands_are_read_from_blocks_continuations_and_inline_spans():
    text = (
        "Run `python -m orbitcl.train loss=orl\nloss.temperature=0.2` or:\n\n```bash\n"
        "python -m orbitcl.train -m loss=ntxent,orl \\\n    seed=0,1   # a sweep\n"
        'make train ARGS="loss=orl"\n$ python -m orbitcl.report DIR --x seed | tee log\n```\n'
    )
    found = [parse(f"x:{n}", t) for n, t in snippets(text)]
    assert [(c.module, c.args) for c in found if c] == [
        ("orbitcl.train", ("-m", "loss=ntxent,orl", "seed=0,1")),
        ("orbitcl.train", ("loss=orl",)),
        ("orbitcl.report", ("DIR", "--x", "seed")),
        ("orbitcl.train", ("loss=orl", "loss.temperature=0.2")),
    ]
    assert variants(["loss=ntxent,orl", "seed=0,1", "dataset=mnist"]) == [
        ["loss=ntxent", "seed=0", "dataset=mnist"],
        ["loss=orl", "seed=0", "dataset=mnist"],
        ["loss=ntxent", "seed=1", "dataset=mnist"],
    ]

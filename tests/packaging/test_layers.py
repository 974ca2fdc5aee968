"""Imports point down the layers: entry points -> experiments -> training -> the rest.

Every module of the installed package is parsed (ast, nothing is imported), and every import in
it, at the top or inside a function, is checked: no module imports an entry point (the top-level
modules users run, `python -m orbitcl.train` and its siblings), `experiments/` imports no entry
point, `training/` nothing of `experiments/`, and the packages below (losses, metrics, models,
data, callbacks, tracking, parallel, conf) nothing of `training/` or `experiments/`.
"""

import ast
from pathlib import Path

import orbitcl

PACKAGE = Path(orbitcl.__file__).parent
LAYERS = {"experiments": 2, "training": 1}  # entry points 3; every other subpackage 0


def entry_points(root: Path) -> set[str]:
    """The package's top-level modules (not its subpackages): each is run with -m."""
    return {p.stem for p in root.glob("*.py") if p.stem != "__init__"}


def layer(module: str, entries: set[str]) -> int:
    """The layer of a dotted module of orbitcl (`orbitcl.training.fit` -> 1)."""
    parts = module.split(".")
    if len(parts) < 2:
        return 0  # the package itself: CONF_DIR, nothing of any layer
    return 3 if parts[1] in entries else LAYERS.get(parts[1], 0)


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every orbitcl import in the file, relative ones resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            # `from orbitcl import analyze` imports the module orbitcl.analyze
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.split(".")[0] == "orbitcl"]


def upward_imports(root: Path) -> list[str]:
    """Every import of a module by one of a lower layer, or of an entry point by any module."""
    entries = entry_points(root)
    wrong = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        for line, name in imported(path, root):
            target = ".".join(name.split(".")[:2])
            if target == ".".join(importer.split(".")[:2]) or len(name.split(".")) < 2:
                continue  # within its own subpackage (or module), or the package itself
            if target.split(".")[1] in entries or layer(name, entries) > layer(importer, entries):
                wrong.append(f"{path.relative_to(root.parent)}:{line} {importer} -> {target}")
    return sorted(set(wrong))


def test_no_module_imports_up_the_layers():
    assert upward_imports(PACKAGE) == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself: a tree with an import of each forbidden kind is caught, line by line,
    and the allowed ones (down the layers, within a subpackage) are not."""
    package = tmp_path / "orbitcl"
    files = {
        "__init__.py": "",
        "train.py": "from orbitcl.training.fit import run\n",
        "analyze.py": "import orbitcl.experiments.sweep\n",
        "training/__init__.py": "",
        "training/fit.py": "def run():\n    from orbitcl.experiments.sweep import run_job\n",
        "experiments/__init__.py": "",
        "experiments/sweep.py": "from orbitcl import losses\nfrom orbitcl import analyze\n",
        "losses/__init__.py": "from .. import training\nfrom orbitcl.losses import base\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert upward_imports(package) == [
        "orbitcl/experiments/sweep.py:2 orbitcl.experiments.sweep -> orbitcl.analyze",
        "orbitcl/losses/__init__.py:1 orbitcl.losses -> orbitcl.training",
        "orbitcl/training/fit.py:2 orbitcl.training.fit -> orbitcl.experiments",
    ]

"""A run directory from elsewhere is untrusted input: which `_target_`s its config may build.

`RUN/.hydra/config.yaml` names the classes that rebuild the model (`_target_`), and Hydra's
`instantiate` calls whatever they name, e.g. `torch.load` on a pickle in the same folder, which
runs that pickle's code. Before anything of a run is built (`experiments.runs.load_run`, and so
`orbitcl.evaluate`, `orbitcl.analyze` and the notebook), every target in the nodes to be built is
checked against an allow-list: orbitcl's own classes, `torch.nn` modules, torchvision transforms
and models (its model classes and registered builders, by name), `timm.create_model`, and the
prefixes a user allows explicitly (`--allow-target PREFIX` or
`ORBITCL_ALLOW_TARGETS=PREFIX,PREFIX`). Only the module path of an allowed prefix is imported to
check what it names. Arguments that make a library read a file the config names
(`models.library.FILE_ARGUMENTS`, e.g. timm's `checkpoint_path`) are refused in any node. Training
from a command line the user typed keeps full Hydra.
"""

import importlib
import inspect
import os
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, ListConfig

ALLOW_VARIABLE = "ORBITCL_ALLOW_TARGETS"

# (prefix, what it may name): checked on the object the target names, once its module is imported.
BUILT_IN = (
    ("orbitcl.", "a class of orbitcl", inspect.isclass),
    ("torch.nn.", "a torch.nn module", lambda obj: _is_module_class(obj)),
    ("torchvision.transforms.", "a torchvision transform", inspect.isclass),
    ("torchvision.models.", "a torchvision model", lambda obj: _is_model(obj)),
    ("timm.", "timm.create_model", lambda obj: _is_timm_create_model(obj)),
)


class UntrustedTargetError(ValueError):
    """A run directory's config names a target outside the allow-list."""


def allowed_prefixes(extra: Iterable[str] = ()) -> list[str]:
    """The user's own allowed prefixes: `extra` and `$ORBITCL_ALLOW_TARGETS` (comma-separated)."""
    from_env = os.environ.get(ALLOW_VARIABLE, "")
    return [p.strip() for p in [*extra, *from_env.split(",")] if p.strip()]


def check_targets(node: Any, field: str, source: str, extra: Iterable[str] = ()) -> None:
    """Raise UntrustedTargetError unless every `_target_` in `node` (the config of `field`, read
    from `source`) is allowed. Nothing is built and no module outside the allow-list is imported.
    """
    user = allowed_prefixes(extra)
    for path, _ in _file_arguments(node, field):
        raise UntrustedTargetError(
            f"{path} in {source} is not allowed: it makes a library load the file it names "
            "(a pickle runs code). Weights come from the run's checkpoint."
        )
    for path, target in _targets(node, field):
        if not isinstance(target, str):
            raise UntrustedTargetError(f"{path}={target!r} in {source} is invalid: not a name")
        if any(target == p or target.startswith(p.rstrip(".") + ".") for p in user):
            continue
        reason = _built_in_refusal(target)
        if reason is not None:
            raise UntrustedTargetError(
                f"{path}={target} in {source} is not allowed: {reason}. A run directory from "
                "elsewhere may build only orbitcl's classes, torch.nn modules, torchvision "
                "transforms and models, and timm.create_model. If you trust it, allow the target "
                f"with --allow-target {target} (or {ALLOW_VARIABLE}={target})."
            )


def _targets(node: Any, path: str):
    """(path of the `_target_` key, its value) for every target in `node`, depth first."""
    if isinstance(node, DictConfig | dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield child, value
            else:
                yield from _targets(value, child)
    elif isinstance(node, ListConfig | list | tuple):
        for i, value in enumerate(node):
            yield from _targets(value, f"{path}[{i}]")


def _file_arguments(node: Any, path: str):
    """(path, key) of every key in `node` that names a file for a library to load."""
    from orbitcl.models.library import FILE_ARGUMENTS

    if isinstance(node, DictConfig | dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key in FILE_ARGUMENTS:
                yield child, key
            yield from _file_arguments(value, child)
    elif isinstance(node, ListConfig | list | tuple):
        for i, value in enumerate(node):
            yield from _file_arguments(value, f"{path}[{i}]")


def _built_in_refusal(target: str) -> str | None:
    """None if a built-in rule allows `target`, else why not."""
    if any(part.startswith("_") for part in target.split(".")):
        return "it names a private object"
    for prefix, kind, accepts in BUILT_IN:
        if target.startswith(prefix):
            obj = _locate(target)
            if obj is None:
                return f"it names nothing importable under {prefix}"
            return None if accepts(obj) else f"it is not {kind}"
    return "it is outside the allow-list"


def _locate(target: str) -> Any:
    """The object `target` names (`package.module.Name`, `package.module.Class.attr`), or None."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _is_module_class(obj: Any) -> bool:
    from torch import nn

    return inspect.isclass(obj) and issubclass(obj, nn.Module)


def _is_model(obj: Any) -> bool:
    """A torchvision model class, or one of torchvision's registered model builders (not any
    callable: `torchvision.models` also re-exports helpers that load pickles from a URL)."""
    import torchvision

    return _is_module_class(obj) or (
        inspect.isfunction(obj) and obj.__name__ in torchvision.models.list_models()
    )


def _is_timm_create_model(obj: Any) -> bool:
    """timm's `create_model` and nothing else of timm (which also has loaders of files)."""
    import timm

    return obj is timm.create_model


def add_allow_target(parser) -> None:
    """The `--allow-target PREFIX` option (repeatable) of the tools that load run directories."""
    parser.add_argument(
        "--allow-target",
        action="append",
        default=[],
        metavar="PREFIX",
        help="also build _target_s under PREFIX from the run's config (trust it first); "
        f"repeatable; or set {ALLOW_VARIABLE}=PREFIX,PREFIX",
    )

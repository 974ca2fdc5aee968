"""Which keys a Hydra sweep varies, and a job's values for them.

A sweep varies the keys given several values (`loss=ntxent,orl`, `seed=range(3)`, ...) on the
command line or in `hydra.sweeper.params` (an experiment preset's sweep). Hydra saves both in
`<sweep dir>/multirun.yaml` before the first job starts, and each job's own overrides (one value
per key) in `<job dir>/.hydra/overrides.yaml`.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

MULTIRUN_FILE = "multirun.yaml"
RESULT_FILE = "result.json"  # where each job records its outcome (orbitcl.training.job)


def _parse(overrides: Iterable[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(list(overrides))


def _key(override: Override) -> str:
    """`loss.temperature` for `loss.temperature=...` and `+loss.temperature=...` alike."""
    key = override.key_or_group
    return f"{key}@{override.package}" if override.package else key


def _sweep_overrides(sweep: str | Path | DictConfig) -> list[Override]:
    """The sweep overrides of a sweep, the sweeper's params first, then the command line's:
    from its config (with the `hydra` node), or from `<sweep dir>/multirun.yaml` ([] if that is
    missing)."""
    if not isinstance(sweep, DictConfig):
        path = Path(sweep) / MULTIRUN_FILE
        if not path.is_file():
            return []
        sweep = OmegaConf.load(path)
    # Unresolved: an override may hold an interpolation meant for the job (`${now:...}`).
    hydra = OmegaConf.to_container(sweep.hydra, resolve=False)
    params = hydra["sweeper"].get("params") or {}  # strings: `{loss: "ntxent,orl"}`
    overrides = [f"{k}={v}" for k, v in params.items()] + hydra["overrides"]["task"]
    return [o for o in _parse(overrides) if o.is_sweep_override()]


def swept_keys(sweep: str | Path | DictConfig) -> list[str]:
    """The keys a sweep (its directory, or its config) varies, in the order Hydra nests them
    (the sweeper's params first, then the command line's); [] if its multirun.yaml is missing."""
    keys = [_key(o) for o in _sweep_overrides(sweep)]
    return list(dict.fromkeys(keys))  # a command-line sweep of a preset's key counts once


def swept_choices(sweep: str | Path | DictConfig) -> dict[str, list | None]:
    """Each swept key's values, typed as the jobs get them (`{"loss": ["ntxent", "orl"], "seed":
    [0, 1, 2]}`), in swept_keys' order; None for a key a search draws from an interval."""
    values: dict[str, list | None] = {}
    for override in _sweep_overrides(sweep):
        # An interval (Optuna's) has no list of values.
        choices = None if override.is_interval_sweep() else list(override.sweep_iterator())
        # The command line, parsed last, wins over a preset's params; the key keeps its place.
        values[_key(override)] = choices
    return values


def job_values(overrides: Iterable[str], keys: Iterable[str]) -> dict[str, Any]:
    """`{key: value}` for `keys` among one job's overrides, typed as Hydra reads them
    (`loss.temperature=0.2` gives 0.2, `seed=1` gives 1), in the order of `keys`."""
    values = {_key(o): o.value() for o in _parse(overrides) if not o.is_sweep_override()}
    return {key: values[key] for key in keys if key in values}


def label(values: dict[str, Any]) -> str:
    """`loss=orl,loss.temperature=0.2,seed=1`: a job's swept values, as a run name."""
    return ",".join(f"{key}={_text(value)}" for key, value in values.items())


def _text(value: Any) -> str:
    return "null" if value is None else str(value)

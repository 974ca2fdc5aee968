"""Building objects from config, with errors that name the config field at fault."""

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig


class ConfigError(ValueError):
    """A config value was rejected; the message names the field, the value and what is allowed."""


def build(field: str, node: DictConfig, **kwargs: Any) -> Any:
    """`instantiate(node, **kwargs)`, turning a constructor's ValueError into a ConfigError.

    Constructors in orbitcl start their ValueError messages with the argument name and value
    (`temperature=-1 is invalid: must be > 0`); prefixing the config group gives the field a user
    types on the command line (`loss.temperature=-1 is invalid: ...`).
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ValueError):
            raise ConfigError(f"{field}.{cause}") from cause
        raise

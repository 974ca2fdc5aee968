"""Train a contrastive model: `python -m orbitcl.train loss=orl dataset=mnist`.

The command line's entry point. Hydra composes the config before anything heavy is imported:
torch, Lightning and W&B (`orbitcl.training.fit`) take ~8 s to import on a laptop CPU, and a
mistyped option or key should fail at once, not after them.
"""

import difflib
import re
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from orbitcl import CONF_DIR

# `trainer.NAME=...`, `trainer.NAME.sub=...`, `~trainer.NAME`; `+trainer.NAME` adds on purpose.
TRAINER_KEY = re.compile(r"^~?trainer\.(\w+)(?=[.=]|$)")


def trainer_arguments() -> set[str]:
    """The Trainer arguments the `trainer` group knows: all of Lightning's (conf/trainer)."""
    return set(OmegaConf.load(CONF_DIR / "trainer" / "default.yaml")) - {"_target_"}


def check_trainer_keys(args: list[str]) -> None:
    """Exits with status 2 on a `trainer.NAME` override that is no Trainer argument, suggesting
    the closest one (Hydra alone would only say the key is not in the config)."""
    known = None
    for arg in args:
        match = TRAINER_KEY.match(arg)
        if not match:
            continue
        known = known or trainer_arguments()
        name = match.group(1)
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean trainer.{close[0]}?" if close else ""
            print(
                f"orbitcl: error: trainer.{name} is not a Lightning Trainer argument{hint} "
                "(any Trainer argument can be set as trainer.NAME=VALUE)",
                file=sys.stderr,
            )
            sys.exit(2)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _main(cfg: DictConfig) -> float | None:
    from orbitcl.training.fit import run  # only once the config has composed: see above

    return run(cfg)


def main() -> float | None:
    check_trainer_keys(sys.argv[1:])
    return _main()


if __name__ == "__main__":
    main()

"""Train a contrastive model: `python -m orbitcl.train loss=orl dataset=mnist`.

The command line's entry point. Hydra composes the config before anything heavy is imported:
torch, Lightning and W&B (`orbitcl.training.fit`) take ~8 s to import on a laptop CPU, and a
mistyped option or key should fail at once, not after them.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from orbitcl.training.fit import run  # only once the config has composed: see above

    return run(cfg)


if __name__ == "__main__":
    main()

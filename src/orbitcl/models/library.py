"""What the encoders built by another library (timm, torchvision) share: the library's model in
`net`, the width of its pooled features, the call that rebuilds it, and the errors a user meets
first (an unknown name, pretrained weights that cannot be fetched).
"""

import difflib
from collections.abc import Iterable

import torch
from torch import nn

# Arguments that make a library load a file or fetch from a URL of the config's choosing: a run
# directory from elsewhere could name a pickle with them (experiments/trust.py), and orbitcl's
# weights come from `pretrained`/`weights` or from an orbitcl checkpoint.
FILE_ARGUMENTS = ("checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


class LibraryEncoder(nn.Module):
    """A library's classification model without its classifier: (B, C, H, W) -> (B, out_dim).

    Subclasses build `net` and set `out_dim`; `recipe()` says how to rebuild `net` with the
    library alone (`orbitcl.export`), so that `net`'s state dict loads into it with strict=True.
    The state dict keys are `net.<the library's keys>`.
    """

    net: nn.Module
    out_dim: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, out_dim): the model's pooled features
        return self.net(x)

    def recipe(self) -> dict:
        """{"call": dotted name of the library function, "arguments": its keyword arguments,
        "after": Python lines that edit its result `model` before the state dict loads}."""
        raise NotImplementedError

    def recipe_code(self, path: str) -> list[str]:
        """Python lines that rebuild `net` with the library alone and load the state dict saved
        at `path` into it with strict=True."""
        recipe = self.recipe()
        module = recipe["call"].split(".")[0]
        arguments = ", ".join(f"{k}={v!r}" for k, v in recipe["arguments"].items())
        return [
            f"import torch, {module}",
            f"model = {recipe['call']}({arguments})",
            *recipe["after"],
            f"model.load_state_dict(torch.load({path!r}, weights_only=True), strict=True)",
        ]


def closest_names(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Up to `n` names like `name`: first those of its family (the same text before the first
    `_`, e.g. `vit_`), most similar first, then any others."""
    names = list(names)
    family = name.split("_")[0] + "_"
    ranked = sorted(
        (x for x in names if x.startswith(family)),
        key=lambda x: -difflib.SequenceMatcher(None, name, x).ratio(),
    )
    close = ranked[: min(n, 3)] if ranked else []
    close += [x for x in difflib.get_close_matches(name, names, n=n, cutoff=0.5) if x not in close]
    return close[:n]


def unknown_name(library: str, name: str, names: Iterable[str]) -> ValueError:
    close = closest_names(name, names)
    hint = f"closest: {', '.join(close)}" if close else "no similar name"
    return ValueError(f"name={name!r} is invalid: not a {library} model ({hint})")


def refuse_file_arguments(model_args: dict) -> None:
    for key in model_args:
        if key in FILE_ARGUMENTS:
            raise ValueError(
                f"model_args.{key} is invalid: weights come from pretrained/weights or from an "
                "orbitcl checkpoint, not from a file named in the config"
            )


def torch_hub_cache() -> str:
    return f"{torch.hub.get_dir()}/checkpoints"

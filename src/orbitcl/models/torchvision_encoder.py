"""Any torchvision classification model as the encoder: `model=torchvision
model.encoder.name=NAME` (docs/backbones.md)."""

from typing import Any

import torchvision
from torch import nn

from orbitcl.models.library import (
    LibraryEncoder,
    refuse_file_arguments,
    torch_hub_cache,
    unknown_name,
)


class TorchvisionEncoder(LibraryEncoder):
    """torchvision's registered builder `name` (`torchvision.models.get_model`), its classifier
    (the last `nn.Linear`) replaced by the identity: the features are the classifier's input,
    the model's pooled output, and `out_dim` its width.

    `in_channels` other than 3 replaces the first convolution by one taking that many channels.
    `cifar_stem` (ResNets only) replaces the ImageNet stem, a 7x7 stride-2 conv and a max-pool
    that would shrink a 32x32 image to 8x8 before the first block, by a 3x3 stride-1 conv and no
    max-pool, as SimCLR does on CIFAR. `image_size` is passed to the ViT builders (`vit_*`), whose
    position embeddings fix it. `weights` names torchvision's weights (`DEFAULT`,
    `IMAGENET1K_V2`, ...) or is None; without a network the run stops here, saying which weights
    and where torch caches them. `model_args` go to the builder as they are.
    """

    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        weights: str | None = None,
        cifar_stem: bool = False,
        image_size: int | None = None,
        model_args: dict[str, Any] | None = None,
    ):
        super().__init__()
        model_args = dict(model_args or {})
        refuse_file_arguments(model_args)
        builders = torchvision.models.list_models(module=torchvision.models)  # classification
        if name not in builders:
            raise unknown_name("torchvision classification", name, builders)
        if cifar_stem and not name.startswith(("resnet", "wide_resnet", "resnext")):
            raise ValueError(f"cifar_stem=True is invalid for {name}: it is for ResNets only")
        if weights is not None and (in_channels != 3 or cifar_stem):
            raise ValueError(
                f"weights={weights!r} is invalid with in_channels={in_channels}, "
                f"cifar_stem={cifar_stem}: torchvision's weights are for its own 3-channel "
                "stem (model=timm adapts pretrained weights to other channel counts)"
            )
        arguments = {"weights": weights} | model_args
        if image_size is not None and name.startswith("vit_"):
            arguments["image_size"] = int(image_size)
        try:
            net = torchvision.models.get_model(name, **arguments)
        except OSError as err:  # urllib's errors are OSErrors
            if weights is None:
                raise
            url = torchvision.models.get_model_weights(name)[weights].url
            raise ValueError(
                f"weights={weights!r} is invalid here: {url} could not be fetched "
                f"({err.__class__.__name__}). torch caches weights in {torch_hub_cache()} "
                "($TORCH_HOME/hub/checkpoints): copy the file there, connect to the network, or "
                "set weights=null"
            ) from err
        # (attribute path, code of the module put there): applied here, and said by recipe().
        self.edits: list[tuple[str, str]] = []
        if cifar_stem:
            self._replace(
                net, "conv1", nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            )
            self._replace(net, "maxpool", nn.Identity())
        elif in_channels != 3:
            path, conv = next((k, m) for k, m in net.named_modules() if isinstance(m, nn.Conv2d))
            self._replace(net, path, _with_channels(conv, in_channels))
        linears = [(k, m) for k, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"name={name!r} is invalid: it has no nn.Linear classifier to remove")
        head, classifier = linears[-1]
        self._replace(net, head, nn.Identity())
        self.net = net
        self.out_dim = classifier.in_features
        # weights=None: the rebuilt model's weights are the exported state dict.
        self.arguments = arguments | {"weights": None}
        self.name = name

    def _replace(self, net: nn.Module, path: str, module: nn.Module) -> None:
        parent, _, leaf = path.rpartition(".")
        setattr(net.get_submodule(parent), leaf, module)
        self.edits.append((path, _code(module)))

    def recipe(self) -> dict:
        after = [f"model{_attribute(path)} = {code}" for path, code in self.edits]
        return {
            "call": f"torchvision.models.{self.name}",
            "arguments": self.arguments,
            "after": after,
        }


def _with_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )


def _code(module: nn.Module) -> str:
    """Python that builds `module` (an identity or a convolution), for the export's recipe."""
    if isinstance(module, nn.Identity):
        return "torch.nn.Identity()"
    if isinstance(module, nn.Conv2d):
        return (
            f"torch.nn.Conv2d({module.in_channels}, {module.out_channels}, "
            f"kernel_size={module.kernel_size}, stride={module.stride}, "
            f"padding={module.padding}, dilation={module.dilation}, groups={module.groups}, "
            f"bias={module.bias is not None})"
        )
    raise TypeError(f"no code for {module.__class__.__name__}")


def _attribute(path: str) -> str:
    """`classifier.2` -> `.classifier[2]`: how Python reaches a submodule."""
    return "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path.split("."))

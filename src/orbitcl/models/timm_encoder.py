"""Any timm model as the encoder: `model=timm model.encoder.name=NAME` (docs/backbones.md)."""

from typing import Any

from orbitcl.models.library import (
    LibraryEncoder,
    refuse_file_arguments,
    torch_hub_cache,
    unknown_name,
)


class TimmEncoder(LibraryEncoder):
    """`timm.create_model(name, num_classes=0, ...)`: the model without its classifier, whose
    output is its pooled features (B, num_features), so `out_dim` is timm's `num_features`.

    `in_channels` is the dataset's channels. `img_size` (the dataset's image size) is passed only
    to models whose input size is fixed by their architecture (timm's `fixed_input_size`: ViTs
    and their kin, whose position embeddings have one entry per patch); convolutional models
    take any size. `model_args` go to `create_model` as they are (e.g. a ViT's `patch_size`).
    `pretrained=True` fetches timm's weights for `name` (a tag, `name.TAG`, picks which), into
    the Hugging Face cache: without a network, the run stops here saying which weights and where.
    """

    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        img_size: int | None = None,
        pretrained: bool = False,
        model_args: dict[str, Any] | None = None,
    ):
        super().__init__()
        import timm  # imported when a timm encoder is built: ~3 s, and only its users pay it

        model_args = dict(model_args or {})
        refuse_file_arguments(model_args)
        if not (name.startswith(("hf-hub:", "hf_hub:")) or timm.is_model(name)):
            raise unknown_name("timm", name, timm.list_models())
        arguments = {"model_name": name, "num_classes": 0, "in_chans": int(in_channels)}
        if img_size is not None and _fixed_input_size(timm, name):
            arguments["img_size"] = int(img_size)
        arguments |= model_args
        try:
            self.net = timm.create_model(**arguments, pretrained=pretrained)
        except OSError as err:  # huggingface_hub's and urllib's errors are OSErrors
            if not pretrained:
                raise
            raise ValueError(
                f"pretrained=True is invalid here: the weights of {name} "
                f"({_weights_source(timm, name)}) could not be fetched ({err.__class__.__name__}). "
                "timm caches them in the Hugging Face cache ($HF_HOME/hub, "
                f"{_hf_cache()}) or, for older weights, in {torch_hub_cache()}: copy them there, "
                "connect to the network, or set pretrained=false"
            ) from err
        self.arguments = arguments
        self.out_dim = int(self.net.num_features)

    def recipe(self) -> dict:
        # pretrained is left out (False): the weights are the exported state dict.
        return {"call": "timm.create_model", "arguments": dict(self.arguments), "after": []}


def _fixed_input_size(timm, name: str) -> bool:
    """Whether the model's architecture fixes its input size (a ViT's position embeddings)."""
    try:
        cfg = timm.models.get_pretrained_cfg(name.split(".")[0])
    except (RuntimeError, KeyError):
        return False
    return bool(cfg is not None and cfg.fixed_input_size)


def _weights_source(timm, name: str) -> str:
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return "no source known to timm"
    if cfg.hf_hub_id:
        return f"Hugging Face hub {cfg.hf_hub_id}"
    return cfg.url or cfg.file or "no source known to timm"


def _hf_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE

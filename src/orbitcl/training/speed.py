"""Speed switches that change no result beyond float rounding: `model.channels_last`,
`model.compile` and `model.float32_matmul_precision` (bf16 mixed precision is Lightning's own
`trainer.precision=bf16-mixed`).

What each gives, measured, is in docs/speed.md ("GPU switches").
"""

import torch
from torch import nn

MATMUL_PRECISIONS = ("highest", "high", "medium")


def set_matmul_precision(value: str) -> None:
    """`model.float32_matmul_precision`: torch's global float32 matmul precision, checked first.
    Anything but "highest" lets CUDA's float32 products use TF32 ("high") or bf16 passes
    ("medium"): the encoder's, since the projector (`training.projection.project`) and the Gram
    rows of the tension losses (`losses.kernels.precision`) pin IEEE fp32 for themselves."""
    if value not in MATMUL_PRECISIONS:
        raise ValueError(
            f"float32_matmul_precision={value!r} is invalid: must be one of {MATMUL_PRECISIONS}"
        )
    torch.set_float32_matmul_precision(value)


def apply_speed_switches(
    encoder: nn.Module, projector: nn.Module, channels_last: bool = False, compile: bool = False
) -> None:
    """In place. `channels_last`: the encoder's 4-D weights in NHWC, so its convolutions (and
    their outputs) run in NHWC, the layout tensor cores want; inputs are converted by the first
    convolution. `compile`: `torch.compile` the encoder's and the projector's forward (and so
    their backward); the first step compiles, seconds to minutes.

    The loss is not compiled from here: orbitcl's losses compile their own elementwise kernels
    (`orbitcl.losses.kernels.blocked`, by problem size, falling back to eager), inside autograd
    Functions that an outer `torch.compile` cannot trace.

    Applied to the modules as they sit in the `ContrastiveModule`: `nn.Module.compile` keeps
    their parameter names, so checkpoints load with the switches on or off. (Not before the module
    is built: a MoCo momentum encoder deep-copies the encoder, and must not share its compiled
    forward.)
    """
    if channels_last:
        encoder.to(memory_format=torch.channels_last)
    if compile:
        encoder.compile()
        projector.compile()

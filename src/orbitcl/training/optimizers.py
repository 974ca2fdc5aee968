"""LARS as SimCLR runs it, and the linear scaling rule of the learning rate.

`optim=sgd` is torch's own SGD; `optim=lars` is `LARS` below. Either can scale its learning rate
with the global batch (`optim.lr_scaling=linear`), which `ContrastiveModule` applies when the
trainer, and so the number of processes, is known.
"""

import torch
from torch import Tensor

REFERENCE_BATCH = 256  # the batch at which `lr` is the base learning rate (Goyal et al. 2017)
LR_SCALINGS = ("none", "linear")


def check_lr_scaling(lr_scaling: str) -> None:
    if lr_scaling not in LR_SCALINGS:
        raise ValueError(
            f"lr_scaling={lr_scaling!r} is invalid: must be one of {', '.join(LR_SCALINGS)}"
        )


def scaled_lr(lr: float, global_batch: int, lr_scaling: str = "linear") -> float:
    """`lr` for a step over `global_batch` images: with the linear scaling rule (SimCLR's
    default), `lr * global_batch / 256`; with "none", `lr`."""
    check_lr_scaling(lr_scaling)
    return lr * global_batch / REFERENCE_BATCH if lr_scaling == "linear" else lr


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al. 2017) as SimCLR implements it (Chen et al.
    2020, `lars_optimizer.py`), for each parameter tensor w with gradient g:

        g     <- g + weight_decay * w
        ratio  = trust_coefficient * ||w|| / ||g||      (1 if either norm is 0)
        v     <- momentum * v + lr * ratio * g
        w     <- w - v           (nesterov: w <- w - (momentum * v + lr * ratio * g))

    The learning rate sits inside the momentum buffer, as in SimCLR (torch's SGD multiplies the
    buffer by it instead; the two differ only while the learning rate changes).

    With `exclude_bias_and_norm` the 1-D tensors, biases and the weights and biases of norm
    layers (BatchNorm's gamma and beta), get neither weight decay nor the trust ratio: plain
    momentum SGD, as SimCLR excludes `bias` and `batch_normalization` by name. Every weight of a
    convolution or linear layer has 2 dimensions or more.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        nesterov: bool = False,
        exclude_bias_and_norm: bool = True,
    ):
        for name, value, ok, allowed in (
            ("lr", lr, lr >= 0, ">= 0"),
            ("momentum", momentum, 0 <= momentum < 1, "in [0, 1)"),
            ("weight_decay", weight_decay, weight_decay >= 0, ">= 0"),
            ("trust_coefficient", trust_coefficient, trust_coefficient > 0, "> 0"),
        ):
            if not ok:
                raise ValueError(f"{name}={value} is invalid: must be {allowed}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            nesterov=nesterov,
            exclude_bias_and_norm=exclude_bias_and_norm,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                step = group["lr"] * self._adapted_gradient(w, group)  # lr * ratio * g
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(w)
                v = state["momentum_buffer"].mul_(group["momentum"]).add_(step)
                w.sub_(step.add_(v, alpha=group["momentum"]) if group["nesterov"] else v)
        return loss

    @staticmethod
    def _adapted_gradient(w: Tensor, group: dict) -> Tensor:
        """ratio * (g + weight_decay * w); g itself for an excluded (1-D) tensor."""
        if w.ndim <= 1 and group["exclude_bias_and_norm"]:
            return w.grad.clone()
        g = w.grad.add(w, alpha=group["weight_decay"])
        w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(g)
        # The unused branch may be 0/0 = NaN; where() picks the other one, so it never shows.
        ratio = torch.where(
            (w_norm > 0) & (g_norm > 0), group["trust_coefficient"] * w_norm / g_norm, 1.0
        )
        return g.mul_(ratio)

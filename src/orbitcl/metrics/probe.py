"""Linear probe: the standard measure of what frozen features linearly encode.

A multinomial logistic regression on standardised features, fitted by full-batch L-BFGS (the
problem is convex, so this is the same optimum scikit-learn's `LogisticRegression` reaches, in a
fraction of the time on 60k x 512 features).
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def fit_linear_probe(
    features: Tensor, labels: Tensor, weight_decay: float = 1e-4, max_iter: int = 200
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fits softmax regression on features (N, D), labels (N,); returns (mean, std, W, b), with
    W (D, C) and b (C,) acting on `(x - mean) / std`."""
    x = features.double()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    x = (x - mean) / std
    num_classes = int(labels.max()) + 1
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def objective() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, labels) + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return mean, std, weight.detach(), bias.detach()


def linear_probe_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    weight_decay: float = 1e-4,
    max_iter: int = 200,
) -> float:
    """Test top-1 accuracy in [0, 1] of a probe fitted on the train features."""
    mean, std, weight, bias = fit_linear_probe(
        train_features.cpu(), train_labels.cpu(), weight_decay, max_iter
    )
    logits = ((test_features.cpu().double() - mean) / std) @ weight + bias
    return (logits.argmax(dim=1) == test_labels.cpu()).double().mean().item()

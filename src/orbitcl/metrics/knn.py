"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018, InstDisc).

The standard monitor of self-supervised training: each query votes with its k most similar bank
features (cosine), each vote weighted by exp(similarity / temperature).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F


def weighted_knn_predict(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Predicted class of each query: (Q, D), (B, D), (B,) -> (Q,).

    Features are L2-normalised here, so raw encoder outputs can be passed. Queries are processed
    in chunks so that the (chunk, B) similarity matrix stays small for large banks.
    """
    if k < 1:
        raise ValueError(f"k={k} is invalid: must be an integer >= 1")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} is invalid: must be > 0")
    k = min(k, bank.shape[0])
    bank = F.normalize(bank.float(), dim=1)
    predictions = []
    for chunk in F.normalize(queries.float(), dim=1).split(chunk_size):
        sim, idx = (chunk @ bank.T).topk(k, dim=1)  # (q, k)
        weights = (sim / temperature).exp()
        votes = torch.zeros(chunk.shape[0], num_classes, device=chunk.device)
        votes.scatter_add_(1, bank_labels[idx], weights)  # (q, num_classes)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    **knn_kwargs,
) -> float:
    """Top-1 accuracy of `weighted_knn_predict`, in [0, 1]."""
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    predicted = weighted_knn_predict(queries, bank, bank_labels, num_classes, **knn_kwargs)
    return (predicted == query_labels).float().mean().item()


def whole_split(
    features: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor,
    size: int,
    all_gather: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The features (M, D) and labels (M,) of a whole split of M samples, in dataset order, from
    each DDP rank's share.

    Under DDP a DistributedSampler gives each of the W ranks an equal share of m samples, padded
    with repeated ones: this rank's ``features`` (m, D), ``labels`` (m,) and the sample
    ``indices`` (m,) its sampler yielded, in loader order. ``all_gather`` stacks a tensor of every
    rank, (m, ...) -> (W, m, ...) (Lightning's ``LightningModule.all_gather``). Every rank gets
    the bank and queries one process would have, each sample once.
    """
    indices, features, labels = (
        all_gather(x).flatten(0, 1) for x in (indices, features, labels)
    )  # (W m,), (W m, D), (W m,)
    first = torch.full((size,), len(indices), device=indices.device)
    first.scatter_reduce_(0, indices, torch.arange(len(indices), device=indices.device), "amin")
    return features[first], labels[first]  # first occurrence of each sample, dataset order

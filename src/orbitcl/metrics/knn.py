"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018, InstDisc).

The standard monitor of self-supervised training: each query votes with its k most similar bank
features (cosine), each vote weighted by exp(similarity / temperature). `knn_grid` evaluates
several k and temperatures from one neighbour search; euclidean distance on request.
"""

import itertools
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from orbitcl.parallel import collectives

METRICS = ("cosine", "euclidean")


def weighted_knn_predict(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
    metric: str = "cosine",
) -> torch.Tensor:
    """Predicted class of each query: (Q, D), (B, D), (B,) -> (Q,).

    `cosine`: features are L2-normalised here, so raw encoder outputs can be passed, and each of
    the k most similar bank features votes with exp(similarity / temperature). `euclidean`: the
    k nearest by L2 distance d on the raw features, each voting with exp(-d^2 / (2 temperature)),
    which on unit vectors is the cosine vote (d^2 = 2 - 2 cos) up to a factor per query. Queries
    are processed in chunks so that the (chunk, B) score matrix stays small for large banks.
    """
    _check(k, temperature, metric)
    predictions = []
    for scores, indices in _neighbours(queries, bank, min(k, len(bank)), metric, chunk_size):
        predictions.append(_vote(scores, bank_labels[indices], num_classes, temperature, metric))
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


def knn_grid(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    ks: Sequence[int],
    temperatures: Sequence[float],
    metric: str = "cosine",
    chunk_size: int = 1024,
) -> dict[tuple[int, float], float]:
    """`knn_accuracy` for every (k, temperature) of `ks` x `temperatures`, from one neighbour
    search for the largest k (the neighbours come sorted, so each k takes the first k)."""
    for k, temperature in itertools.product(ks, temperatures):
        _check(k, temperature, metric)
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    correct = dict.fromkeys(itertools.product(ks, temperatures), 0)
    neighbours = _neighbours(queries, bank, min(max(ks), len(bank)), metric, chunk_size)
    for (scores, indices), labels in zip(neighbours, query_labels.split(chunk_size), strict=True):
        neighbour_labels = bank_labels[indices]  # (q, max k)
        for k, temperature in correct:
            votes = (scores[:, :k], neighbour_labels[:, :k], num_classes, temperature, metric)
            correct[k, temperature] += int((_vote(*votes) == labels).sum())
    return {key: count / len(queries) for key, count in correct.items()}


def _check(k: int, temperature: float, metric: str) -> None:
    if k < 1:
        raise ValueError(f"k={k} is invalid: must be an integer >= 1")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} is invalid: must be > 0")
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is invalid: must be one of {', '.join(METRICS)}")


def _neighbours(
    queries: torch.Tensor, bank: torch.Tensor, k: int, metric: str, chunk_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For each chunk of queries, the scores (q, k) and bank indices (q, k) of their k nearest
    bank features, nearest first: cosine similarity, or -d^2 / 2 for `euclidean`."""
    queries, bank = queries.float(), bank.float()
    if metric == "cosine":
        queries, bank = F.normalize(queries, dim=1), F.normalize(bank, dim=1)
    else:
        bank_half_sq = bank.square().sum(1) / 2  # (B,)
    for chunk in queries.split(chunk_size):
        scores = chunk @ bank.T  # (q, B)
        if metric == "euclidean":  # -|q - b|^2 / 2 = q.b - |b|^2 / 2 - |q|^2 / 2
            scores = scores - bank_half_sq - chunk.square().sum(1, keepdim=True) / 2
        yield scores.topk(k, dim=1)


def _vote(
    scores: torch.Tensor, labels: torch.Tensor, num_classes: int, temperature: float, metric: str
) -> torch.Tensor:
    """The class with the most weight among each query's neighbours: (q, k), (q, k) -> (q,)."""
    if metric == "euclidean":
        # exp(-d^2 / 2t) underflows to 0 for large distances: relative to the nearest neighbour's,
        # a factor per query that changes no vote's winner.
        scores = scores - scores[:, :1]
    weights = (scores / temperature).exp()
    votes = torch.zeros(scores.shape[0], num_classes, device=scores.device)
    votes.scatter_add_(1, labels, weights)  # (q, num_classes)
    return votes.argmax(dim=1)


def whole_split(
    features: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The features (M, D) and labels (M,) of every sample that some DDP rank computed, each
    once, in dataset order.

    This rank's ``features`` (m, D) (or any per-sample values (m,)), ``labels`` (m,) and the
    dataset ``indices`` (m,) of those samples: what actually ran, so that a `limit_val_batches`
    (a count or a fraction) or ranks with different counts change nothing but which samples
    take part. The gather (``orbitcl.parallel.collectives.gather``) needs one shape on every
    rank: the shares are padded to the longest, the padding marked by index -1. A
    DistributedSampler pads its shards with repeated samples; those are kept once. Every rank
    gets what one process gets on the same samples. Runs once per validation: its host sync is
    off the training step.
    """
    counts = collectives.gather(indices.new_full((1,), len(indices)))  # (W,)
    pad = int(counts.max()) - len(indices)  # host sync: the gathered shapes depend on it
    indices = torch.cat([indices, indices.new_full((pad,), -1)])
    features = torch.cat([features, features.new_zeros((pad, *features.shape[1:]))])
    labels = torch.cat([labels, labels.new_zeros((pad,))])
    indices, features, labels = (
        collectives.gather(x) for x in (indices, features, labels)
    )  # (W m,), (W m, D), (W m,)
    ran = indices >= 0
    indices, features, labels = indices[ran], features[ran], labels[ran]
    order = indices.argsort(stable=True)
    sorted_indices = indices[order]
    first = torch.ones_like(sorted_indices, dtype=torch.bool)
    first[1:] = sorted_indices[1:] != sorted_indices[:-1]  # the first copy of each sample
    keep = order[first]
    return features[keep], labels[keep]


def whole_loader_split(
    features: torch.Tensor,
    labels: torch.Tensor,
    loader: DataLoader,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`whole_split` of what this rank computed over `loader`, in loader order: features (m, D)
    (or any per-sample values (m,)) and labels (m,) -> those of every sample that ran on some
    rank, each once, on every rank; as given in one process.

    The loader is unshuffled (validation), so the m samples that ran are the first m its sampler
    yields, however many batches `limit_val_batches` let run: their dataset indices come from
    the sampler, and no dataset has to return them.
    """
    if collectives.world_size() == 1:
        return features, labels
    sampled = list(itertools.islice(iter(loader.sampler), len(features)))
    if len(sampled) != len(features):
        raise RuntimeError(
            f"{len(features)} validation features but the loader's sampler yields {len(sampled)}"
        )
    indices = torch.as_tensor(sampled, device=features.device)  # (m,)
    return whole_split(features, labels, indices)


def leave_one_out_predict(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
) -> torch.Tensor:
    """`weighted_knn_predict` (cosine) of every sample of features (M, D) against the others,
    itself left out: the kNN of a small labelled set without a separate bank (M,)."""
    _check(k, temperature, "cosine")
    z = F.normalize(features.float(), dim=1)
    scores = z @ z.T  # (M, M)
    scores.fill_diagonal_(float("-inf"))
    top, indices = scores.topk(min(k, len(z) - 1), dim=1)
    return _vote(top, labels[indices], num_classes, temperature, "cosine")


def confusion_matrix(
    predicted: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(C, C) float64: row c, the share of class c's samples predicted as each class (rows of
    classes without samples are 0)."""
    counts = torch.zeros(num_classes * num_classes, dtype=torch.float64)
    counts.index_add_(
        0,
        labels.long() * num_classes + predicted.long(),
        torch.ones(len(labels), dtype=torch.float64),
    )
    counts = counts.view(num_classes, num_classes)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)

import pytest
import torch
import torch.nn.functional as F

from orbitcl.metrics.knn import knn_accuracy, knn_grid, weighted_knn_predict


def naive_knn(queries, bank, labels, num_classes, k, temperature):
    """One query at a time, straight from the definition."""
    bank = F.normalize(bank, dim=1)
    out = []
    for q in F.normalize(queries, dim=1):
        sims = bank @ q
        top = sims.argsort(descending=True)[:k]
        votes = torch.zeros(num_classes, dtype=torch.float64)
        for j in top:
            votes[labels[j]] += torch.exp(sims[j] / temperature)
        out.append(int(votes.argmax()))
    return torch.tensor(out)


@pytest.mark.parametrize("k,chunk_size", [(1, 7), (5, 3), (50, 1024)])
def test_matches_naive_definition(k, chunk_size):
    gen = torch.Generator().manual_seed(k)
    bank, queries = torch.randn(40, 6, generator=gen), torch.randn(23, 6, generator=gen)
    labels = torch.randint(0, 4, (40,), generator=gen)
    got = weighted_knn_predict(
        queries, bank, labels, 4, k=k, temperature=0.2, chunk_size=chunk_size
    )
    expected = naive_knn(queries.double(), bank.double(), labels, 4, min(k, 40), 0.2)
    assert torch.equal(got, expected)


def naive_euclidean_knn(queries, bank, labels, num_classes, k, temperature):
    """One query at a time: the k nearest by L2 distance d, each voting exp(-d^2 / 2t)."""
    out = []
    for q in queries:
        distances = (bank - q).norm(dim=1)
        top = distances.argsort()[:k]
        votes = torch.zeros(num_classes, dtype=torch.float64)
        for j in top:
            votes[labels[j]] += torch.exp(-(distances[j] ** 2) / (2 * temperature))
        out.append(int(votes.argmax()))
    return torch.tensor(out)


@pytest.mark.parametrize("k,chunk_size", [(1, 7), (5, 3), (50, 1024)])
def test_euclidean_matches_naive_definition(k, chunk_size):
    gen = torch.Generator().manual_seed(k)
    bank, queries = torch.randn(40, 6, generator=gen), torch.randn(23, 6, generator=gen)
    labels = torch.randint(0, 4, (40,), generator=gen)
    got = weighted_knn_predict(
        queries, bank, labels, 4, k=k, temperature=0.5, chunk_size=chunk_size, metric="euclidean"
    )
    expected = naive_euclidean_knn(queries.double(), bank.double(), labels, 4, min(k, 40), 0.5)
    assert torch.equal(got, expected)


def test_euclidean_on_unit_vectors_is_cosine():
    gen = torch.Generator().manual_seed(0)
    bank, queries = (F.normalize(torch.randn(n, 8, generator=gen), dim=1) for n in (60, 30))
    labels = torch.randint(0, 5, (60,), generator=gen)
    kwargs = {"k": 10, "temperature": 0.1}
    cosine = weighted_knn_predict(queries, bank, labels, 5, **kwargs)
    euclidean = weighted_knn_predict(queries, bank, labels, 5, metric="euclidean", **kwargs)
    assert torch.equal(euclidean, cosine)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_grid_equals_each_knn_on_its_own(metric):
    gen = torch.Generator().manual_seed(1)
    bank, queries = torch.randn(80, 6, generator=gen), torch.randn(50, 6, generator=gen)
    bank_labels, query_labels = (torch.randint(0, 3, (n,), generator=gen) for n in (80, 50))
    ks, temperatures = [1, 5, 20, 200], [0.05, 0.5]
    grid = knn_grid(queries, query_labels, bank, bank_labels, ks, temperatures, metric, 16)
    assert list(grid) == [(k, t) for k in ks for t in temperatures]
    for (k, t), accuracy in grid.items():
        args = (queries, query_labels, bank, bank_labels)
        expected = knn_accuracy(*args, k=k, temperature=t, metric=metric)  # a float32 mean
        assert accuracy == pytest.approx(expected, abs=1e-6), (k, t)
    assert len(set(grid.values())) > 1  # the cells differ: k and t are not ignored


def test_separable_clusters_are_classified_perfectly():
    centers = torch.eye(3) * 10
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(20)
    bank = centers[labels] + torch.randn(60, 3, generator=gen)
    queries = centers[labels[:30]] + torch.randn(30, 3, generator=gen)
    assert knn_accuracy(queries, labels[:30], bank, labels, k=10) == 1.0


def test_rejects_bad_arguments():
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="^k=0"):
        weighted_knn_predict(x, x, y, 1, k=0)
    with pytest.raises(ValueError, match="^temperature=0"):
        weighted_knn_predict(x, x, y, 1, temperature=0)
    with pytest.raises(ValueError, match="^metric='manhattan' is invalid"):
        knn_grid(x, y, x, y, [1], [0.1], metric="manhattan")

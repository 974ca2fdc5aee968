import pytest
import torch
import torch.nn.functional as F

from orbitcl.metrics.knn import knn_accuracy, weighted_knn_predict


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

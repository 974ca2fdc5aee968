"""Class geometry (orbitcl.metrics.class_geometry): against direct pairwise formulas on random
embeddings, and on configurations with known values (a regular simplex, collapse, the imbalanced
SupCon optimum's size correlation); the callback's size correlation under imbalance."""

import itertools
import statistics

import pytest
import torch
import torch.nn.functional as F
from helpers.callback_harness import digits_harness
from scipy import stats

from orbitcl.callbacks import ClassGeometry
from orbitcl.data import DigitsDataModule
from orbitcl.experiments.optimum import optimal_embeddings
from orbitcl.losses import SupConLoss
from orbitcl.metrics.class_geometry import (
    class_geometry,
    nc1,
    nc2,
    prototype_cosines,
    size_correlation,
)


def direct(z, labels, n_classes):
    """The metrics from every pair of samples and explicit class means (float64)."""
    u = F.normalize(z.double(), dim=1)
    cos = u @ u.T
    same = [(i, j) for i, j in itertools.permutations(range(len(u)), 2) if labels[i] == labels[j]]
    other = [(i, j) for i, j in itertools.permutations(range(len(u)), 2) if labels[i] != labels[j]]
    within = torch.stack([cos[i, j] for i, j in same]).mean().item()
    between = torch.stack([cos[i, j] for i, j in other]).mean().item()
    means = torch.stack([u[labels == c].mean(0) for c in range(n_classes)])
    proto = F.normalize(means, dim=1) @ F.normalize(means, dim=1).T
    deviation = max(
        abs(proto[a, b].item() + 1 / (n_classes - 1))
        for a, b in itertools.permutations(range(n_classes), 2)
    )
    spread = statistics.pstdev(
        proto[a, b].item() for a, b in itertools.combinations(range(n_classes), 2)
    )
    return proto, {
        "simplex_deviation": deviation,
        "within_cos": within,
        "between_cos": between,
        "prototype_cos_std": spread,
    }


def test_metrics_match_the_pairwise_formulas():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 6, generator=g)
    labels = torch.arange(40) % 4
    proto, expected = direct(z, labels, 4)
    metrics = class_geometry(z, labels, 4, class_sizes=torch.tensor([10, 20, 30, 40]))
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name
    assert metrics["gap"] == pytest.approx(expected["within_cos"] - expected["between_cos"])
    torch.testing.assert_close(prototype_cosines(z, labels, 4), proto, rtol=1e-12, atol=1e-12)
    sizes = [10, 20, 30, 40]
    pairs = list(itertools.combinations(range(4), 2))
    rho = stats.spearmanr([sizes[a] + sizes[b] for a, b in pairs], [proto[a, b] for a, b in pairs])
    assert metrics["size_correlation"] == pytest.approx(rho.statistic, abs=1e-12)


def test_collapsed_classes_on_a_regular_simplex():
    c = 5
    vertices = torch.eye(c, dtype=torch.float64) - 1 / c  # a regular simplex in R^c
    labels = torch.arange(c).repeat_interleave(7)
    metrics = class_geometry(vertices[labels] * 3.0, labels, c)  # scale: cosines ignore it
    assert metrics["simplex_deviation"] == pytest.approx(0, abs=1e-12)
    assert metrics["within_cos"] == pytest.approx(1, abs=1e-12)  # collapse
    # Between-class pairs all at -1/(C-1).
    assert metrics["between_cos"] == pytest.approx(-1 / (c - 1), abs=1e-12)
    assert metrics["prototype_cos_std"] == pytest.approx(0, abs=1e-12)


def test_bad_settings():
    with pytest.raises(ValueError, match="n_per_class=1 is invalid"):
        ClassGeometry(n_per_class=1)
    with pytest.raises(ValueError, match="n_classes=1 is invalid"):
        class_geometry(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 1)


def spearman_by_hand(x: list[float], y: list[float]) -> float:
    """Pearson's correlation of the ranks, ties given their mean rank."""

    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        rank = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                rank[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return torch.tensor(rank, dtype=torch.float64)

    return torch.corrcoef(torch.stack([ranks(x), ranks(y)]))[0, 1].item()


def test_size_correlation_is_spearman_over_class_pairs():
    g = torch.Generator().manual_seed(1)
    z, labels = torch.randn(60, 5, generator=g), torch.arange(60) % 5
    sizes = [30, 10, 20, 20, 10]  # pair sums tie: 30 + 10 = 20 + 20 = 40, 10 + 20 = 30, ...
    cosines = prototype_cosines(z, labels, 5)
    pairs = list(itertools.combinations(range(5), 2))
    expected = spearman_by_hand(
        [sizes[a] + sizes[b] for a, b in pairs], [cosines[a, b].item() for a, b in pairs]
    )
    assert size_correlation(cosines, torch.tensor(sizes)) == pytest.approx(expected, abs=1e-12)


def test_size_correlation_sign_on_imbalanced_supcon_optimum():
    # geometry.md: SupCon's optimum bends the simplex with class sizes, pairs with large classes
    # the most separated: larger n_c + n_c', lower M_cc', a negative correlation.
    counts = [12, 6, 3, 3, 2]
    labels = torch.repeat_interleave(torch.arange(5), torch.tensor(counts))
    z = optimal_embeddings(SupConLoss(temperature=0.5), labels, dim=8, steps=400)
    cosines = prototype_cosines(z, labels.repeat(2), 5)
    assert size_correlation(cosines, torch.tensor(counts)) < -0.8
    # Mirrored (cosines negated, so large pairs are the closest), the sign turns.
    assert size_correlation(-cosines, torch.tensor(counts)) > 0.8


@pytest.mark.parametrize("class_counts,logged", [(None, True), ([60] * 10, False)])
def test_callback_logs_size_correlation_only_for_unequal_counts(class_counts, logged, tmp_path):
    # digits' training split has 141 to 146 images per class: unequal
    datamodule = DigitsDataModule(num_workers=0, class_counts=class_counts)
    trainer, module = digits_harness(tmp_path, datamodule, global_step=7)
    callback = ClassGeometry(n_per_class=20)
    callback.on_validation_epoch_end(trainer, module)
    assert ("classes/size_correlation" in module.logged) == logged
    assert (tmp_path / "plots" / "class_geometry_step000007.png").is_file()
    if logged:
        images, labels = callback.chosen(trainer)  # uint8: the eval transform is embedded
        z = module.projector(
            module.encoder(torch.stack([datamodule.eval_transform(image) for image in images]))
        )
        expected = size_correlation(
            prototype_cosines(z.detach(), labels, 10), torch.tensor(datamodule.train_class_counts())
        )
        assert module.logged["classes/size_correlation"] == pytest.approx(expected, abs=1e-6)


def test_nc1_is_0_on_collapsed_classes_and_equals_a_direct_formula():
    g = torch.Generator().manual_seed(0)
    c, d = 4, 6
    means = torch.randn(c, d, generator=g, dtype=torch.float64)
    labels = torch.arange(c).repeat(5)
    assert nc1(means[labels], labels, c) == pytest.approx(0.0, abs=1e-12)
    h = means[labels] + 0.3 * torch.randn(len(labels), d, generator=g, dtype=torch.float64)
    mu = torch.stack([h[labels == k].mean(0) for k in range(c)])
    grand = mu.mean(0)
    sw = sum(torch.outer(h[i] - mu[labels[i]], h[i] - mu[labels[i]]) for i in range(len(h)))
    sb = sum(torch.outer(mu[k] - grand, mu[k] - grand) for k in range(c)) / c
    expected = torch.trace(sw / len(h) @ torch.linalg.pinv(sb)) / c
    assert nc1(h, labels, c) == pytest.approx(float(expected), rel=1e-8)


def test_nc2_is_0_on_a_simplex_and_positive_off_it():
    c = 5
    simplex = torch.eye(c, dtype=torch.float64) - 1.0 / c  # centred, equal norms and angles
    labels = torch.arange(c)
    values = nc2(simplex, labels, c)
    assert values["nc2_equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert values["nc2_equiangularity"] == pytest.approx(0.0, abs=1e-12)
    stretched = simplex * torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0], dtype=torch.float64)[:, None]
    assert nc2(stretched, labels, c)["nc2_equinorm"] > 0.1
    with pytest.raises(ValueError, match="no sample"):
        nc2(simplex[:3], labels[:3], c)

"""The optimum a loss aims for (orbitcl.optimum): free unit embeddings reproduce geometry.md's
optimal geometries, through the Python API and the command line."""

import json
import math

import pytest
import torch

from orbitcl.experiments.optimum import optimal_embeddings, prototypes_cosines, summary
from orbitcl.losses import SoftSupConLoss, SupConLoss, YAwareLoss
from orbitcl.losses.weighted import weight_entropy
from orbitcl.optimum import main


def classes(*counts):
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def test_embeddings_are_unit_rows_in_view_order():
    labels = classes(2, 2)
    z = optimal_embeddings(SupConLoss(0.5), labels, dim=3, steps=5)
    assert z.shape == (8, 3) and z.dtype == torch.float64
    torch.testing.assert_close(z.norm(dim=1), torch.ones(8, dtype=torch.float64))


def test_balanced_supcon_collapses_onto_a_regular_simplex():
    labels = classes(3, 3, 3, 3)
    z = optimal_embeddings(SupConLoss(0.5), labels, dim=8)
    cosines = prototypes_cosines(z, labels)
    off = ~torch.eye(4, dtype=torch.bool)
    assert (cosines[off] + 1 / 3).abs().max() < 1e-4
    within = (z[:12] * z[12:]).sum(1)  # each image's two views
    assert within.min() > 1 - 1e-4  # collapsed


def test_imbalanced_supcon_bends_the_simplex_with_class_sizes():
    labels = classes(12, 6, 3, 3)
    cosines = prototypes_cosines(optimal_embeddings(SupConLoss(0.5), labels, dim=8), labels)
    pairs = {(a, b): cosines[a, b].item() for a in range(4) for b in range(a + 1, 4)}
    assert min(pairs, key=pairs.get) == (0, 1)  # the two largest classes: most separated
    assert max(pairs.values()) - min(pairs.values()) > 0.2  # not a simplex
    assert pairs[(0, 2)] == pytest.approx(pairs[(0, 3)], abs=1e-4)  # equal sizes, equal angles


def test_soft_supcon_reaches_its_bound_and_the_gap_of_its_epsilon():
    tau, epsilon = 0.5, 0.3
    labels = classes(12, 6, 3, 3)
    loss = SoftSupConLoss(tau, epsilon)
    z = optimal_embeddings(loss, labels, dim=4)
    result = summary(loss, z, labels)
    assert result["loss_minus_entropy"] == pytest.approx(0, abs=1e-8)  # L = H(W): P = W
    cosines = torch.tensor(result["prototype_cosines"])
    off = ~torch.eye(4, dtype=torch.bool)
    c_star = 1 + tau * math.log(epsilon)  # whatever the class sizes
    assert (cosines[off] - c_star).abs().max() < 1e-4


def test_y_aware_reaches_its_bound_on_a_circle_but_not_on_a_line():
    angles = torch.arange(12, dtype=torch.float64) * 2 * math.pi / 12
    circle = torch.stack([angles.cos(), angles.sin()], 1)  # (N, 2)
    loss = YAwareLoss(0.5, sigma=0.8)
    z = optimal_embeddings(loss, circle, dim=8)
    gap = loss(z[:12], z[12:], circle) - weight_entropy(loss.weights(circle, torch.float64))
    assert abs(gap.item()) < 1e-6
    line = torch.linspace(0, 3, 12, dtype=torch.float64)
    z = optimal_embeddings(loss, line, dim=2, steps=800)  # no P = W to converge to
    gap = loss(z[:12], z[12:], line) - weight_entropy(loss.weights(line, torch.float64))
    assert gap.item() > 1e-3


def test_command_line_prints_the_simplex_and_writes_json_and_heatmap(tmp_path, capsys):
    out = tmp_path / "optimum"
    args = ["loss=supcon", "loss.temperature=0.5", "class_counts=[3,3,3]", "dim=4", f"out={out}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "prototype cosines" in printed and "-0.5000" in printed
    result = json.loads((out / "optimum.json").read_text())
    cosines = torch.tensor(result["prototype_cosines"])
    assert (cosines[~torch.eye(3, dtype=torch.bool)] + 0.5).abs().max() < 1e-4
    assert result["loss"] >= result["entropy"]
    assert (out / "optimum.png").read_bytes()[:4] == b"\x89PNG"


def test_command_line_names_bad_values(tmp_path, capsys):
    assert main(["class_counts=[3,0]", f"out={tmp_path}"]) == 2
    assert "class_counts=[3, 0] is invalid" in capsys.readouterr().err
    assert main(["dim=0", f"out={tmp_path}"]) == 2
    assert "dim=0 is invalid" in capsys.readouterr().err

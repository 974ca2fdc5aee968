"""VICReg, Barlow Twins, SimSiam, BYOL, N-pair and lifted structured losses against naive
float64 references written from the papers' formulas (values and gradients), and against
lightly's losses, schedule conventions named and shown to explain the whole gap."""

import copy
import math

import pytest
import torch
from lightly.loss import BarlowTwinsLoss as LightlyBarlowTwins
from lightly.loss import NegativeCosineSimilarity

from orbitcl.losses.barlow_twins import barlow_twins
from orbitcl.losses.byol import byol
from orbitcl.losses.lifted import lifted_structured
from orbitcl.losses.npair import npair
from orbitcl.losses.simsiam import simsiam
from orbitcl.losses.vicreg import vicreg

EXACT = {"rtol": 1e-10, "atol": 1e-10}


def views(n=6, d=5, seed=0, k=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_() for _ in range(k)]


def value_and_grads(loss, xs):
    return [loss.detach(), *torch.autograd.grad(loss, xs)]


def assert_same(ours, ref, xs):
    for a, b in zip(value_and_grads(ours, xs), value_and_grads(ref, xs), strict=True):
        torch.testing.assert_close(a, b, **EXACT)


# References, one loop per sum of the papers' formulas -------------------------------------------


def naive_barlow(za, zb, lam=5e-3, eps=1e-5):
    n, d = za.shape

    def std(z):
        cols = []
        for j in range(d):
            m = sum(z[i, j] for i in range(n)) / n
            var = sum((z[i, j] - m) ** 2 for i in range(n)) / n
            cols.append(torch.stack([(z[i, j] - m) / torch.sqrt(var + eps) for i in range(n)]))
        return cols

    a, b = std(za), std(zb)
    loss = 0
    for i in range(d):
        for j in range(d):
            cij = sum(a[i][k] * b[j][k] for k in range(n)) / n
            loss = loss + ((1 - cij) ** 2 if i == j else lam * cij**2)
    return loss


def cos(x, y):
    return (x @ y) / (x.norm() * y.norm())


def naive_simsiam(pa, pb, za, zb):
    n = len(pa)
    d_ab = -sum(cos(pa[i], zb[i].detach()) for i in range(n)) / n
    d_ba = -sum(cos(pb[i], za[i].detach()) for i in range(n)) / n
    return d_ab / 2 + d_ba / 2


def naive_byol(pa, pb, ka, kb):
    n = len(pa)

    def sq(p, k):
        return ((p / p.norm() - k.detach() / k.detach().norm()) ** 2).sum()

    return sum(sq(pa[i], kb[i]) + sq(pb[i], ka[i]) for i in range(n)) / n


def naive_npair(f, fp, l2=0.002, labels=None):
    n = len(f)
    total = 0
    for i in range(n):
        if labels is None:
            total = total + torch.log(
                1 + sum(torch.exp(f[i] @ fp[j] - f[i] @ fp[i]) for j in range(n) if j != i)
            )
        else:
            pos = [j for j in range(n) if labels[j] == labels[i]]
            lse = torch.log(sum(torch.exp(f[i] @ fp[j]) for j in range(n)))
            total = total + lse - sum(f[i] @ fp[j] for j in pos) / len(pos)
    reg = sum(f[i] @ f[i] for i in range(n)) / n + sum(fp[i] @ fp[i] for i in range(n)) / n
    return total / n + l2 / 4 * reg


def naive_lifted(za, zb, margin=1.0, labels=None):
    z = torch.cat([za, zb])
    ids = list(range(len(za))) * 2 if labels is None else labels.tolist() * 2
    m = len(z)

    def dist(i, j):
        return torch.sqrt(((z[i] - z[j]) ** 2).sum())

    pairs = [(i, j) for i in range(m) for j in range(i + 1, m) if ids[i] == ids[j]]
    total = 0
    for i, j in pairs:
        neg = sum(torch.exp(margin - dist(i, k)) for k in range(m) if ids[k] != ids[i])
        neg = neg + sum(torch.exp(margin - dist(j, k)) for k in range(m) if ids[k] != ids[j])
        total = total + torch.relu(torch.log(neg) + dist(i, j)) ** 2
    return total / (2 * len(pairs))


# Against the references ---------------------------------------------------------------------


@pytest.mark.parametrize("n, d, lam", [(3, 2, 5e-3), (7, 4, 0.3)])
def test_barlow_twins_matches_paper(n, d, lam):
    za, zb = views(n, d)
    assert_same(barlow_twins(za, zb, lam), naive_barlow(za, zb, lam), [za, zb])


def test_simsiam_and_byol_match_papers():
    pa, pb, za, zb = views(5, 4, k=4)
    assert_same(simsiam(pa, pb, za, zb), naive_simsiam(pa, pb, za, zb), [pa, pb])
    assert_same(byol(pa, pb, za, zb), naive_byol(pa, pb, za, zb), [pa, pb])
    for loss in (simsiam, byol):  # stop-gradient: nothing flows into the targets
        grads = torch.autograd.grad(loss(pa, pb, za, zb), [za, zb], allow_unused=True)
        assert grads == (None, None)


@pytest.mark.parametrize("labels", [None, torch.tensor([0, 1, 0, 2, 1, 0])])
def test_npair_matches_paper(labels):
    f, fp = views(6, 4)
    assert_same(npair(f, fp, 0.01, labels), naive_npair(f, fp, 0.01, labels), [f, fp])


@pytest.mark.parametrize("labels", [None, torch.tensor([0, 1, 0, 2, 1])])
@pytest.mark.parametrize("margin", [0.0, 1.0, 4.0])
def test_lifted_matches_paper(labels, margin):
    za, zb = views(5, 3)
    ours = lifted_structured(za, zb, margin, labels)
    assert_same(ours, naive_lifted(za, zb, margin, labels), [za, zb])
    assert ours > 0


def test_npair_with_distinct_labels_is_the_view_form():
    f, fp = views(5, 3)
    torch.testing.assert_close(npair(f, fp, labels=torch.arange(5)), npair(f, fp), **EXACT)


# Against lightly, float64 -------------------------------------------------------------------


def test_barlow_twins_equals_lightly():
    za, zb = (z.detach() for z in views(8, 6))
    for lam in (5e-3, 0.3):
        torch.testing.assert_close(
            barlow_twins(za, zb, lam), LightlyBarlowTwins(lam)(za, zb), **EXACT
        )


def test_simsiam_and_byol_against_lightly_negative_cosine():
    pa, pb, za, zb = (z.detach() for z in views(7, 5, k=4))
    neg = NegativeCosineSimilarity()
    theirs = 0.5 * (neg(pa, zb) + neg(pb, za))
    torch.testing.assert_close(simsiam(pa, pb, za, zb), theirs, **EXACT)
    # BYOL sums the two directions of 2 - 2 cos: 4 + 4 x lightly's form, exactly.
    torch.testing.assert_close(byol(pa, pb, za, zb), 4 + 4 * theirs, **EXACT)


def test_invalid_shapes_are_named():
    za, zb = views(1, 3)
    with pytest.raises(ValueError, match="VICReg needs .* N >= 2"):
        vicreg(za, zb)
    with pytest.raises(ValueError, match="Barlow Twins needs"):
        barlow_twins(za, zb)
    with pytest.raises(ValueError, match="margin=-1 is invalid"):
        lifted_structured(*views(3, 2), margin=-1)
    assert math.isfinite(float(lifted_structured(*views(3, 2)).detach()))


def test_byol_cosine_schedule_and_ema_match_lightly():
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    from orbitcl.training.momentum import MomentumEncoder, cosine_momentum

    total = 10
    assert cosine_momentum(0.996, 0, total) == pytest.approx(0.996, abs=1e-15)
    assert cosine_momentum(0.996, total, total) == 1.0
    for k in range(total):  # the whole difference: lightly divides by max_steps - 1
        assert cosine_momentum(0.996, k, total) == pytest.approx(
            cosine_schedule(k, total + 1, 0.996, 1.0), abs=1e-15
        )
    online = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).double()
    ema = MomentumEncoder(online[0], online[1], momentum=cosine_momentum(0.996, 3, total))
    theirs = torch.nn.Sequential(ema.encoder, ema.projector)

    theirs = copy.deepcopy(theirs)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    ema.update(online[0], online[1])
    update_momentum(online, theirs, m=cosine_momentum(0.996, 3, total))
    for a, b in zip(ema.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)

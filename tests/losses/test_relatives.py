"""SupCon, DCL, DCLW, alignment-uniformity and VRN: against naive float64 references written from
their papers, against the peer implementations (pytorch-metric-learning, lightly), per-rank
shares, DDP on 2 CPU processes, degenerate inputs and argument checks."""

import functools
import math
import warnings

import pytest
import torch
from helpers.gloo_ranks import WORLD, rows, spawn
from helpers.reference_relatives import naive_align_uniform, naive_dcl, naive_supcon, naive_vrn

from orbitcl.losses import (
    AlignUniformLoss,
    DCLLoss,
    DCLWLoss,
    NTXentLoss,
    SupConLoss,
    VRNLoss,
)
from orbitcl.losses.align_uniform import align_uniform
from orbitcl.losses.dcl import dcl, von_mises_fisher_weights
from orbitcl.losses.supcon import supcon
from orbitcl.losses.vrn import uniform_target, vrn

CASES = [(2, 3, 0.1), (5, 8, 0.5), (16, 32, 1.0)]  # (N, d, temperature)
EXACT = {"rtol": 1e-10, "atol": 1e-10}  # float64 against the naive references
PEER_TOLERANCE = 1e-8  # float64, absolute, against pytorch-metric-learning and lightly


def views(n, d, dtype=torch.float64, seed=0):
    """Two (N, d) leaf tensors of un-normalised projector outputs."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g, dtype=dtype).requires_grad_() for _ in range(2))


def class_labels(n, seed=0):
    """(N,) labels of 3 classes, at least two of them present (so there are negatives)."""
    labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))
    labels[0], labels[-1] = 0, 1
    return labels


def value_and_grads(output, z_a, z_b):
    return (output.detach(), *torch.autograd.grad(output, (z_a, z_b)))


def assert_all_close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, **EXACT)


def max_abs_difference(actual, expected) -> float:
    return max(float((a - e).abs().max()) for a, e in zip(actual, expected, strict=True))


# Each loss as (ours, naive reference), both f(z_a, z_b, images=...), with labels and parameters
# bound: the per-rank share tests run over all of them.
LABELS = class_labels(12, seed=1)
LOSSES = {
    "supcon": (
        lambda z_a, z_b, images=None: supcon(z_a, z_b, LABELS[: len(z_a)], 0.5, images),
        lambda z_a, z_b, images=None: naive_supcon(z_a, z_b, LABELS[: len(z_a)], 0.5, images),
    ),
    "dcl": (
        lambda z_a, z_b, images=None: dcl(z_a, z_b, 0.5, images=images),
        lambda z_a, z_b, images=None: naive_dcl(z_a, z_b, 0.5, images=images),
    ),
    "dclw": (
        lambda z_a, z_b, images=None: DCLWLoss(0.5, sigma=0.3).compute(z_a, z_b, images),
        lambda z_a, z_b, images=None: naive_dcl(z_a, z_b, 0.5, sigma=0.3, images=images),
    ),
    "align_uniform": (
        lambda z_a, z_b, images=None: align_uniform(z_a, z_b, 0.7, 2.0, 2.0, images),
        lambda z_a, z_b, images=None: naive_align_uniform(z_a, z_b, 0.7, 2.0, 2.0, images),
    ),
    "vrn": (
        lambda z_a, z_b, images=None: vrn(z_a, z_b, -0.1, images),
        lambda z_a, z_b, images=None: naive_vrn(z_a, z_b, -0.1, images),
    ),
}


# --- SupCon ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d, temperature", CASES)
def test_supcon_matches_reference(n, d, temperature):
    z_a, z_b = views(n, d)
    labels = class_labels(n)
    assert_all_close(
        value_and_grads(SupConLoss(temperature)(z_a, z_b, labels), z_a, z_b),
        value_and_grads(naive_supcon(z_a, z_b, labels, temperature), z_a, z_b),
    )


@pytest.mark.parametrize("n, d, temperature", [*CASES, (64, 128, 0.07)])
def test_supcon_matches_pytorch_metric_learning(n, d, temperature):
    from pytorch_metric_learning.losses import SupConLoss as PMLSupConLoss

    z_a, z_b = views(n, d)
    labels = class_labels(n)
    ours = value_and_grads(SupConLoss(temperature)(z_a, z_b, labels), z_a, z_b)
    pml = PMLSupConLoss(temperature)(torch.cat([z_a, z_b]), labels.repeat(2))
    peer = value_and_grads(pml, z_a, z_b)
    diff = max_abs_difference(ours, peer)
    print(f"\nSupCon vs pytorch-metric-learning, N={n} d={d} tau={temperature}: {diff:.1e}")
    assert diff < PEER_TOLERANCE


def test_supcon_of_one_class_is_the_formula_where_pml_gives_zero():
    """pml returns 0 for a batch with no negative pair; the paper's formula is not 0."""
    from pytorch_metric_learning.losses import SupConLoss as PMLSupConLoss

    z_a, z_b = views(6, 8)
    labels = torch.zeros(6, dtype=torch.long)
    ours = SupConLoss(0.5)(z_a, z_b, labels)
    torch.testing.assert_close(ours, naive_supcon(z_a, z_b, labels, 0.5), **EXACT)
    assert ours > 0
    assert PMLSupConLoss(0.5)(torch.cat([z_a, z_b]), labels.repeat(2)) == 0


def test_supcon_with_distinct_labels_is_ntxent():
    """Each anchor's only positive is its other view: SupCon is NT-Xent."""
    z_a, z_b = views(8, 16)
    assert_all_close(
        value_and_grads(SupConLoss(0.3)(z_a, z_b, torch.arange(8)), z_a, z_b),
        value_and_grads(NTXentLoss(0.3)(z_a, z_b), z_a, z_b),
    )


def test_supcon_needs_labels_of_the_batch():
    z_a, z_b = views(4, 8)
    with pytest.raises(ValueError, match="needs the labels"):
        SupConLoss()(z_a, z_b)
    with pytest.raises(ValueError, match=r"^labels must have shape \(N,\) = \(4,\)"):
        SupConLoss()(z_a, z_b, torch.arange(8))


# --- DCL and DCLW ------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [None, 0.5, 0.2])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_dcl_matches_reference(n, d, temperature, sigma):
    z_a, z_b = views(n, d)
    loss = DCLLoss(temperature) if sigma is None else DCLWLoss(temperature, sigma)
    assert_all_close(
        value_and_grads(loss(z_a, z_b), z_a, z_b),
        value_and_grads(naive_dcl(z_a, z_b, temperature, sigma), z_a, z_b),
    )


@pytest.mark.parametrize("sigma", [None, 0.5, 0.2])
@pytest.mark.parametrize("n, d, temperature", [*CASES, (64, 128, 0.07)])
def test_dcl_matches_lightly(n, d, temperature, sigma):
    from lightly.loss import DCLLoss as LightlyDCLLoss
    from lightly.loss import DCLWLoss as LightlyDCLWLoss

    z_a, z_b = views(n, d)
    if sigma is None:
        ours, peer = DCLLoss(temperature), LightlyDCLLoss(temperature)
    else:
        ours, peer = DCLWLoss(temperature, sigma), LightlyDCLWLoss(temperature, sigma)
    with warnings.catch_warnings():  # lightly builds its weights with torch.tensor(tensor)
        warnings.simplefilter("ignore", UserWarning)
        expected = value_and_grads(peer(z_a, z_b), z_a, z_b)
    diff = max_abs_difference(value_and_grads(ours(z_a, z_b), z_a, z_b), expected)
    name = "DCL" if sigma is None else f"DCLW sigma={sigma}"
    print(f"\n{name} vs lightly, N={n} d={d} tau={temperature}: {diff:.1e}")
    assert diff < PEER_TOLERANCE


def test_dclw_weights_average_to_one_and_carry_no_gradient():
    z_a, z_b = views(16, 32)
    weights = von_mises_fisher_weights(z_a, z_b, 0.5)
    torch.testing.assert_close(weights.mean(), torch.tensor(1.0, dtype=torch.float64), **EXACT)
    assert not weights.requires_grad
    cosines = torch.nn.functional.cosine_similarity(z_a, z_b).detach()
    # The closer a positive pair already is, the less it weighs.
    assert torch.equal(weights.argsort(), cosines.argsort(descending=True))


# --- Alignment and uniformity ------------------------------------------------------------------


@pytest.mark.parametrize("lam, t, alpha", [(1.0, 2.0, 2.0), (0.5, 1.0, 1.0), (2.0, 3.0, 1.5)])
@pytest.mark.parametrize("n, d", [(2, 3), (5, 8), (16, 32)])
def test_align_uniform_matches_reference(n, d, lam, t, alpha):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(AlignUniformLoss(lam, t, alpha)(z_a, z_b), z_a, z_b),
        value_and_grads(naive_align_uniform(z_a, z_b, lam, t, alpha), z_a, z_b),
    )


def test_align_uniform_equals_wang_and_isola_code():
    """Their published code: `(x - y).norm(dim=1).pow(alpha).mean()` and
    `torch.pdist(x).pow(2).mul(-t).exp().mean().log()`, on normalised x, y."""
    z_a, z_b = views(16, 32)
    x, y = (torch.nn.functional.normalize(z, dim=1) for z in (z_a, z_b))

    def uniform(v):
        return torch.pdist(v, p=2).pow(2).mul(-2).exp().mean().log()

    theirs = (x - y).norm(p=2, dim=1).pow(2).mean() + 0.5 * (uniform(x) + uniform(y)) / 2
    assert_all_close(
        value_and_grads(AlignUniformLoss(lam=0.5)(z_a, z_b), z_a, z_b),
        value_and_grads(theirs, z_a, z_b),
    )


# --- VRN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-1 / 59999, -0.3, 0.5])
@pytest.mark.parametrize("n, d", [(2, 3), (5, 8), (16, 32)])
def test_vrn_matches_reference(n, d, target):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(VRNLoss(target)(z_a, z_b), z_a, z_b),
        value_and_grads(naive_vrn(z_a, z_b, target), z_a, z_b),
    )


def test_vrn_default_target_comes_from_the_training_set_size():
    z_a, z_b = views(8, 16)
    loss = VRNLoss()
    with pytest.raises(ValueError, match="needs a target, or the training-set size"):
        loss(z_a, z_b)
    loss.train_set_size = 60000
    assert loss.resolved_target() == -1 / 59999
    torch.testing.assert_close(loss(z_a, z_b), naive_vrn(z_a, z_b, -1 / 59999), **EXACT)
    given = VRNLoss(target=-0.2)
    given.train_set_size = 60000  # a target given in the config wins
    torch.testing.assert_close(given(z_a, z_b), naive_vrn(z_a, z_b, -0.2), **EXACT)


@pytest.mark.parametrize("k", [3, 10, 50])
def test_vrn_is_zero_at_the_regular_simplex(k):
    """k unit vectors at the vertices of a regular simplex have all pairwise cosines -1/(k-1):
    the full-batch optimum, where the default target leaves nothing to reduce."""
    simplex = torch.eye(k, dtype=torch.float64) - 1 / k  # centred basis vectors, (k, k)
    loss = VRNLoss()
    loss.train_set_size = k
    value = loss(simplex, simplex)
    assert abs(float(value)) < 1e-28  # a sum of squares of rounding errors
    assert loss(simplex, simplex.roll(1, 1)) > 0.01  # any other arrangement is penalised


def test_uniform_target_needs_two_images():
    with pytest.raises(ValueError, match=r"^train_set_size=1 is invalid: must be >= 2"):
        uniform_target(1)


# --- All losses: per-rank shares, DDP, degenerate inputs, precision ----------------------------


@pytest.mark.parametrize("images", [slice(0, 3), slice(3, 7), slice(7, 8), slice(None)])
@pytest.mark.parametrize("name", list(LOSSES))
def test_row_subset_matches_reference(name, images):
    """What one DDP rank computes for its images, against the naive per-anchor loop."""
    ours, naive = LOSSES[name]
    z_a, z_b = views(8, 16)
    assert_all_close(
        value_and_grads(ours(z_a, z_b, images=images), z_a, z_b),
        value_and_grads(naive(z_a, z_b, images=images), z_a, z_b),
    )


@pytest.mark.parametrize("name", list(LOSSES))
def test_row_subsets_average_to_the_full_loss(name):
    ours, _ = LOSSES[name]
    z_a, z_b = views(12, 16)
    parts = [ours(z_a, z_b, images=slice(r, r + 4)) for r in (0, 4, 8)]
    assert_all_close(
        value_and_grads(torch.stack(parts).mean(), z_a, z_b),
        value_and_grads(ours(z_a, z_b), z_a, z_b),
    )


PER_RANK = 5
MODULES = {  # built with gather_distributed=True on the ranks
    "supcon": functools.partial(SupConLoss, temperature=0.2),
    "dcl": functools.partial(DCLLoss, temperature=0.2),
    "dclw": functools.partial(DCLWLoss, temperature=0.2, sigma=0.5),
    "align_uniform": functools.partial(AlignUniformLoss, lam=0.8),
    "vrn": functools.partial(VRNLoss, target=-0.1),
}


def _global_batch():
    z_a, z_b = views(WORLD * PER_RANK, 16, seed=3)
    return z_a.detach(), z_b.detach(), class_labels(WORLD * PER_RANK, seed=3)


def _rank_losses(rank: int) -> dict:
    z_a, z_b, labels = _global_batch()
    z_a, z_b = (z[rows(rank, PER_RANK)].clone().requires_grad_() for z in (z_a, z_b))
    results = {}
    for name, make in MODULES.items():
        loss = make(gather_distributed=True)
        own = labels[rows(rank, PER_RANK)]
        value = loss(z_a, z_b, own) if loss.needs.labels else loss(z_a, z_b)
        results[name] = value_and_grads(value, z_a, z_b)
    return results


def test_losses_across_processes_equal_the_one_process_loss(tmp_path):
    """2 gloo processes: the mean of the ranks' losses is the loss of the concatenated batch,
    and each rank's gradient over the world size is its rows of the one-process gradient."""
    per_rank = spawn(_rank_losses, tmp_path)
    z_a, z_b, labels = _global_batch()
    z_a.requires_grad_(), z_b.requires_grad_()
    for name, make in MODULES.items():
        loss = make()
        value = loss(z_a, z_b, labels) if loss.needs.labels else loss(z_a, z_b)
        expected, grad_a, grad_b = value_and_grads(value, z_a, z_b)
        mean = torch.stack([out[name][0] for out in per_rank]).mean()
        diffs = [float((mean - expected).abs())]
        for r, out in enumerate(per_rank):
            own = rows(r, PER_RANK)
            diffs.append(float((out[name][1] / WORLD - grad_a[own]).abs().max()))
            diffs.append(float((out[name][2] / WORLD - grad_b[own]).abs().max()))
        print(f"\n{name}, 2 processes vs one: max abs difference {max(diffs):.1e}")
        assert max(diffs) < 1e-12, name


def call(name, loss, z_a, z_b):
    return loss(z_a, z_b, class_labels(len(z_a))) if name == "supcon" else loss(z_a, z_b)


@pytest.mark.parametrize("case", ["identical_views", "collapse", "duplicate_rows"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MODULES))
def test_degenerate_inputs_stay_finite(name, dtype, case):
    z_a, z_b = (z.detach() for z in views(8, 16, dtype))
    if case == "identical_views":
        z_b = z_a.clone()
    elif case == "collapse":
        z_a = z_b = z_a[:1].expand(8, -1)
    elif case == "duplicate_rows":
        z_a = torch.cat([z_a[:4], z_a[:4]])
    z_a, z_b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
    for x in value_and_grads(call(name, MODULES[name](), z_a, z_b), z_a, z_b):
        assert torch.isfinite(x).all(), name


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alignment_of_identical_views_is_zero_with_zero_gradient(alpha):
    z_a = views(8, 16)[0]
    z_b = z_a.detach().clone().requires_grad_()
    value, grad_a, grad_b = value_and_grads(
        AlignUniformLoss(lam=0.0, alpha=alpha)(z_a, z_b), z_a, z_b
    )
    assert value == 0 and (grad_a == 0).all() and (grad_b == 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(MODULES))
def test_half_precision_inputs_are_upcast(name, dtype):
    z_a, z_b = (z.detach().to(dtype) for z in views(16, 32, torch.float32))
    loss = call(name, MODULES[name](), z_a, z_b)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, call(name, MODULES[name](), z_a.float(), z_b.float()))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SupConLoss(temperature=0), r"^temperature=0 is invalid: must be > 0$"),
        (lambda: DCLLoss(temperature=-1), r"^temperature=-1 is invalid: must be > 0$"),
        (lambda: DCLWLoss(sigma=0), r"^sigma=0 is invalid: must be > 0$"),
        (lambda: DCLWLoss(sigma=math.nan), r"^sigma=nan is invalid: must be > 0$"),
        (lambda: AlignUniformLoss(lam=-1), r"^lam=-1 is invalid: must be >= 0$"),
        (lambda: AlignUniformLoss(t=0), r"^t=0 is invalid: must be > 0$"),
        (lambda: AlignUniformLoss(alpha=0), r"^alpha=0 is invalid: must be > 0$"),
        (lambda: VRNLoss(target=1.5), r"^target=1.5 is invalid: must be in \[-1, 1\]"),
        (lambda: VRNLoss(target=math.nan), r"^target=nan is invalid: must be in \[-1, 1\]"),
    ],
)
def test_invalid_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", ["dcl", "dclw", "align_uniform", "vrn"])
def test_one_image_is_refused(name):
    """No negative pair (DCL, VRN) or no pair of one view (uniformity)."""
    z_a, z_b = views(1, 8)
    with pytest.raises(ValueError, match=r"N=1 rows|M >= 2"):
        MODULES[name]()(z_a, z_b)


@pytest.mark.parametrize("name", list(MODULES))
def test_config_builds_the_loss(train_config, name):
    """conf/loss/NAME.yaml (conf/aux/vrn.yaml for VRN) builds the class with its defaults."""
    from hydra.utils import instantiate

    config = train_config("+aux=vrn") if name == "vrn" else train_config(f"loss={name}")
    loss = instantiate(config.aux.loss if name == "vrn" else config.loss)
    assert isinstance(loss, MODULES[name].func)
    assert loss.gather_distributed is False


def test_gather_distributed_without_process_group_is_the_local_loss():
    z_a, z_b = views(8, 16, torch.float32)
    for name, make in MODULES.items():
        assert torch.equal(
            call(name, make(gather_distributed=True), z_a, z_b), call(name, make(), z_a, z_b)
        ), name

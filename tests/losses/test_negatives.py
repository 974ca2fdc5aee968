"""The switch `negatives` (all | cross_view | within_view, docs/geometry.md) of NT-Xent, ORL and
ORL's controls: against the naive float64 references, on several blocks of the blocked kernels,
compiled and eager, its masks, and its errors."""

import pytest
import torch
from helpers.loss_cases import assert_all_close, value_and_grads, views
from helpers.reference_controls import naive_orl_given_tension, naive_orl_mean_tension
from helpers.reference_losses import candidates_of, naive_ntxent, naive_orl, positive_of

from orbitcl.losses import (
    NTXentLoss,
    ORLLoss,
    ORLMeanTensionLoss,
    ORLShuffledTensionLoss,
    functional,
    kernels,
)
from orbitcl.losses.kernels import blocked
from orbitcl.losses.kernels.negatives import leave_out_, left_out
from orbitcl.losses.orl_mean_tension import orl_mean_tension
from orbitcl.losses.orl_shuffled_tension import orl_shuffled_tension, shuffle_negatives

NEGATIVES = ["all", "cross_view", "within_view"]
CASES = [(2, 3, 0.1), (5, 8, 0.5), (9, 16, 1.0)]  # (N, d, temperature)
LOSSES = {  # name: (ours, the naive reference, keyword arguments)
    "ntxent": (functional.ntxent, naive_ntxent, {}),
    "orl": (functional.orl, naive_orl, {"t_min": 1e-6}),
    "orl_t_min": (functional.orl, naive_orl, {"t_min": 0.2}),
    "orl_detached": (functional.orl, naive_orl, {"detach_tension": True}),
}


@pytest.mark.parametrize("negatives", NEGATIVES)
@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_losses_match_reference(n, d, temperature, name, negatives):
    ours, naive, kwargs = LOSSES[name]
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(ours(z_a, z_b, temperature, negatives=negatives, **kwargs), z_a, z_b),
        value_and_grads(naive(z_a, z_b, temperature, negatives=negatives, **kwargs), z_a, z_b),
    )


# Compiling takes tens of seconds per signature: the compiled kernels run with `make test-all`.
@pytest.mark.parametrize("backend", ["eager", pytest.param("compile", marks=pytest.mark.slow)])
@pytest.mark.parametrize("images", [None, slice(2, 9)])
@pytest.mark.parametrize("negatives", ["cross_view", "within_view"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_several_blocks_match_reference(monkeypatch, name, negatives, images, backend):
    """Blocks of 3 images (6 rows) at N = 11: the quadrants of `leave_out_` are per block, and
    each block's rows are [view a; view b] also for a DDP rank's rows (`images`)."""
    if backend == "compile" and name == "ntxent":
        pytest.skip("NT-Xent's kernels are always eager")
    monkeypatch.setattr(blocked, "BLOCK_BYTES", 6 * 2 * 11 * 8)
    ours, naive, kwargs = LOSSES[name]
    z_a, z_b = views(11, 8)
    kw = {"negatives": negatives, "images": images, **kwargs}
    extra = {} if name == "ntxent" else {"backend": backend}
    assert_all_close(
        value_and_grads(ours(z_a, z_b, 0.3, **kw, **extra), z_a, z_b),
        value_and_grads(naive(z_a, z_b, 0.3, **kw), z_a, z_b),
    )


def test_all_is_the_default_and_the_variants_differ():
    z_a, z_b = views(6, 8)
    for loss in (functional.ntxent, functional.orl):
        default = loss(z_a, z_b, 0.5).detach()
        assert torch.equal(loss(z_a, z_b, 0.5, negatives="all").detach(), default)
        cross = loss(z_a, z_b, 0.5, negatives="cross_view").detach()
        within = loss(z_a, z_b, 0.5, negatives="within_view").detach()
        assert len({float(default), float(cross), float(within)}) == 3


@pytest.mark.parametrize("negatives", NEGATIVES)
@pytest.mark.parametrize("images", [None, slice(1, 4)])
def test_masks_are_the_references_candidates(negatives, images):
    n = 5
    first = torch.arange(n)[images or slice(None)]
    cols = torch.cat([first, first + n])
    pos_cols = cols.roll(len(first))
    expected = torch.zeros(len(cols), 2 * n, dtype=torch.bool)  # the negatives
    for row, i in enumerate(cols.tolist()):
        for k in candidates_of(i, n, negatives):
            expected[row, k] = k != positive_of(i, n)
    assert torch.equal(kernels.negative_mask(cols, 2 * n, negatives), expected)
    k = kernels.candidates(negatives, n) - 1
    assert int(expected.sum(1).unique()) == k  # K negatives per row: 2N - 2 or N - 1
    assert torch.equal(
        kernels.negative_cols(cols, 2 * n, negatives),
        torch.arange(2 * n).expand_as(expected)[expected].view(len(cols), k),
    )
    # The in-place slices of the eager kernels fill where the boolean mask says: the entries
    # that are neither the positive nor a negative.
    filled = leave_out_(torch.zeros(len(cols), 2 * n), cols, pos_cols, negatives, 1.0) == 1
    assert torch.equal(filled, left_out(cols, pos_cols, 2 * n, negatives))
    outside = ~expected
    outside[torch.arange(len(cols)), pos_cols] = False
    assert torch.equal(filled, outside)


def test_candidates():
    assert [kernels.candidates(neg, 8) for neg in NEGATIVES] == [15, 8, 8]
    assert NTXentLoss().candidates(8) == 15
    assert ORLLoss(negatives="cross_view").candidates(8) == 8
    assert ORLMeanTensionLoss(negatives="within_view").candidates(8) == 8
    assert ORLShuffledTensionLoss().candidates(8) == 15


# --- ORL's controls --------------------------------------------------------------------------


@pytest.mark.parametrize("negatives", NEGATIVES)
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_mean_tension_matches_reference(n, d, temperature, negatives):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(
            orl_mean_tension(z_a, z_b, temperature, 1e-6, negatives=negatives), z_a, z_b
        ),
        value_and_grads(
            naive_orl_mean_tension(z_a, z_b, temperature, 1e-6, negatives=negatives), z_a, z_b
        ),
    )


@pytest.mark.parametrize("negatives", ["cross_view", "within_view"])
@pytest.mark.parametrize("images", [None, slice(1, 4)])
def test_shuffled_tension_shuffles_the_chosen_negatives_only(negatives, images):
    """Each row's tension is permuted among its chosen negatives (the same multiset, moved), the
    other entries stay; the loss is ORL's formula with that T over the chosen negatives."""
    n = 8
    z_a, z_b = views(n, 16)
    first = torch.arange(n)[images or slice(None)]
    cols = torch.cat([first, first + n])
    t = functional.tension(z_a, z_b, images=images).detach()
    g = torch.Generator().manual_seed(5)
    shuffled = shuffle_negatives(t, cols, g, negatives)
    chosen = kernels.negative_mask(cols, 2 * n, negatives)
    assert torch.equal(shuffled[~chosen], t[~chosen])
    for row in range(len(cols)):
        assert torch.equal(shuffled[row][chosen[row]].sort()[0], t[row][chosen[row]].sort()[0])
    assert (shuffled[chosen] != t[chosen]).float().mean() > 0.6
    full_t = torch.zeros(2 * n, 2 * n, dtype=t.dtype)
    full_t[cols] = shuffled
    ours = orl_shuffled_tension(
        z_a, z_b, 0.3, images=images, generator=torch.Generator().manual_seed(5),
        negatives=negatives,
    )  # fmt: skip
    naive = naive_orl_given_tension(z_a, z_b, 0.3, full_t, images, negatives)
    assert_all_close(value_and_grads(ours, z_a, z_b), value_and_grads(naive, z_a, z_b))


def test_modules_pass_negatives_down():
    z_a, z_b = views(6, 8, torch.float32)
    neg = "cross_view"
    assert torch.equal(
        NTXentLoss(0.2, negatives=neg)(z_a, z_b), functional.ntxent(z_a, z_b, 0.2, negatives=neg)
    )
    assert torch.equal(
        ORLLoss(0.2, negatives=neg)(z_a, z_b), functional.orl(z_a, z_b, 0.2, negatives=neg)
    )
    assert torch.equal(
        ORLMeanTensionLoss(0.2, negatives=neg)(z_a, z_b),
        orl_mean_tension(z_a, z_b, 0.2, negatives=neg),
    )
    torch.manual_seed(0)
    ours = ORLShuffledTensionLoss(0.2, negatives=neg)(z_a, z_b)
    torch.manual_seed(0)
    assert torch.equal(ours, orl_shuffled_tension(z_a, z_b, 0.2, negatives=neg))


# --- errors ------------------------------------------------------------------------------------

MESSAGE = r"^negatives='both' is invalid: must be one of all, cross_view, within_view$"


@pytest.mark.parametrize("make", [NTXentLoss, ORLLoss, ORLMeanTensionLoss, ORLShuffledTensionLoss])
def test_unknown_negatives_are_refused_by_the_constructors(make):
    with pytest.raises(ValueError, match=MESSAGE):
        make(negatives="both")


def test_unknown_negatives_are_refused_by_the_functions():
    z_a, z_b = views(4, 8)
    for call in (
        lambda: functional.ntxent(z_a, z_b, 0.5, negatives="both"),
        lambda: functional.orl(z_a, z_b, 0.5, negatives="both"),
        lambda: orl_mean_tension(z_a, z_b, 0.5, negatives="both"),
        lambda: orl_shuffled_tension(z_a, z_b, 0.5, negatives="both"),
    ):
        with pytest.raises(ValueError, match=MESSAGE):
            call()


@pytest.mark.parametrize("loss", ["ntxent", "orl", "orl_detached", "orl_mean_tension"])
def test_config_error_names_loss_negatives(train_config, loss):
    from orbitcl.training.config import ConfigError, build

    cfg = train_config(f"loss={loss}", "loss.negatives=both")
    with pytest.raises(ConfigError, match=r"^loss\.negatives='both' is invalid: must be one of"):
        build("loss", cfg.loss)
    assert build("loss", train_config(f"loss={loss}").loss).negatives == "all"

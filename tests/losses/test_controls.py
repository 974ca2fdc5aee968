"""Tests of ORL's controls (docs/orl.md "Known confound") against naive float64 references:
the mean-tension and shuffled-tension losses, the orl_detached config and the sweep preset."""

import pytest
import torch
from helpers.gloo_ranks import WORLD, global_views, rows, spawn
from helpers.loss_cases import EXACT, assert_all_close, degenerate, value_and_grads, views
from helpers.paths import CONF_DIR
from helpers.reference_controls import (
    naive_mean_tension_scale,
    naive_orl_given_tension,
    naive_orl_mean_tension,
    permuted_tension,
)
from helpers.reference_losses import naive_tension
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from orbitcl.losses import ORLLoss, ORLMeanTensionLoss, ORLShuffledTensionLoss, functional
from orbitcl.losses.orl_mean_tension import orl_mean_tension
from orbitcl.losses.orl_shuffled_tension import orl_shuffled_tension, shuffled_tension

CASES = [(2, 3, 0.1), (5, 8, 0.5), (16, 32, 1.0), (7, 4, 0.2)]  # (N, d, temperature)


def generator(seed):
    return torch.Generator().manual_seed(seed)


# --- mean tension --------------------------------------------------------------------------


@pytest.mark.parametrize("t_min", [1e-6, 0.3])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_mean_tension_matches_reference(n, d, temperature, t_min):
    z_a, z_b = views(n, d)
    assert_all_close(
        value_and_grads(orl_mean_tension(z_a, z_b, temperature, t_min), z_a, z_b),
        value_and_grads(naive_orl_mean_tension(z_a, z_b, temperature, t_min), z_a, z_b),
    )


@pytest.mark.parametrize("images", [slice(0, 3), slice(3, 8)])
def test_mean_tension_of_some_images_without_sum_across_is_their_own_mean(images):
    """Documented: in one process, `images` restricts the mean of T as well."""
    z_a, z_b = views(8, 16)
    expected = naive_orl_mean_tension(z_a, z_b, 0.5, images=images, mean_images=images)
    assert_all_close(
        value_and_grads(orl_mean_tension(z_a, z_b, 0.5, images=images), z_a, z_b),
        value_and_grads(expected, z_a, z_b),
    )


def test_mean_tension_scale_is_the_mean_of_the_negatives_tension():
    """The scale enters as a constant: the loss equals NT-Xent's formula with each negative
    logit times c, where c is the mean of `functional.tension` off the self and positive."""
    z_a, z_b = views(16, 32)
    t = functional.tension(z_a, z_b).detach()
    off = ~torch.eye(32, dtype=torch.bool)
    off[torch.arange(32), torch.arange(32).roll(16)] = False
    c = t[off].mean()
    torch.testing.assert_close(c, naive_mean_tension_scale(z_a, z_b), **EXACT)
    assert 0.05 < c < 0.95  # random views: T is neither all clamped nor all 1
    factors = torch.full((32, 32), float(c), dtype=torch.float64)
    factors[~off & ~torch.eye(32, dtype=torch.bool)] = 1.0  # the positives
    assert_all_close(
        value_and_grads(orl_mean_tension(z_a, z_b, 0.5), z_a, z_b),
        value_and_grads(naive_orl_given_tension(z_a, z_b, 0.5, factors), z_a, z_b),
    )


def test_mean_tension_with_t_min_one_is_ntxent():
    z_a, z_b = views(16, 32)
    assert_all_close(
        value_and_grads(orl_mean_tension(z_a, z_b, 0.5, t_min=1.0), z_a, z_b),
        value_and_grads(functional.ntxent(z_a, z_b, 0.5), z_a, z_b),
    )


# --- shuffled tension ----------------------------------------------------------------------


def negatives_mask(n_rows, n_all, cols):
    """(2n, 2N) bool: k != i, p(i) for the rows of `cols` (both views of some images)."""
    mask = torch.ones(n_rows, n_all, dtype=torch.bool)
    mask[torch.arange(n_rows), cols] = False
    mask[torch.arange(n_rows), cols.roll(n_rows // 2)] = False
    return mask


def own_cols(n, images):
    first = torch.arange(n)[images or slice(None)]
    return torch.cat([first, first + n])


@pytest.mark.parametrize("images", [None, slice(2, 6)])
def test_shuffled_tension_permutes_each_rows_negatives(images):
    n = 8
    z_a, z_b = views(n, 16)
    t = functional.tension(z_a, z_b, images=images)
    shuffled = shuffled_tension(z_a, z_b, images=images, generator=generator(0))
    cols = own_cols(n, images)
    neg = negatives_mask(len(cols), 2 * n, cols)
    n_rows = len(cols)
    for row in range(n_rows):  # the same multiset of negative T, bit for bit
        assert torch.equal(shuffled[row][neg[row]].sort()[0], t[row][neg[row]].sort()[0])
    assert (shuffled[torch.arange(n_rows), cols.roll(n_rows // 2)] == 1).all()  # positives
    assert (shuffled[torch.arange(n_rows), cols] == 0).all()  # self entries, as tension()
    # Shuffled indeed: most negatives moved (a fixed point has probability 1 / 14 each).
    assert (shuffled[neg] != t[neg]).float().mean() > 0.7


def test_shuffled_tension_draws_from_the_generator_or_the_global_rng():
    z_a, z_b = views(8, 16)
    first = shuffled_tension(z_a, z_b, generator=generator(1))
    assert torch.equal(first, shuffled_tension(z_a, z_b, generator=generator(1)))
    assert not torch.equal(first, shuffled_tension(z_a, z_b, generator=generator(2)))
    loss = ORLShuffledTensionLoss(0.5)
    torch.manual_seed(3)
    a, b = loss(z_a, z_b), loss(z_a, z_b)
    torch.manual_seed(3)
    assert torch.equal(loss(z_a, z_b), a) and not torch.equal(a, b)  # a new draw per call


def permutation_source(t, shuffled, cols):
    """{(row, k): m}: the column m of `t` whose value the shuffled T holds at negative k,
    recovered by sorting each row's negatives (ties: only at the clamp t_min, where T has no
    gradient, so any matching is exact for values and gradients)."""
    n_all = t.shape[1]
    neg = negatives_mask(len(cols), n_all, cols)
    source = {}
    for row in range(len(cols)):
        neg_cols = torch.arange(n_all)[neg[row]]
        original = neg_cols[t[row, neg_cols].argsort()]
        moved = neg_cols[shuffled[row, neg_cols].argsort()]
        for k, m in zip(moved.tolist(), original.tolist(), strict=True):
            source[(int(cols[row]), k)] = m
    return source


@pytest.mark.parametrize("detach_tension", [True, False])
@pytest.mark.parametrize("images", [None, slice(1, 4)])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_shuffled_tension_loss_is_orls_formula_with_the_shuffled_tension(
    n, d, temperature, images, detach_tension
):
    z_a, z_b = views(n, d)
    if images is not None and n < 4:
        images = slice(0, 1)
    cols = own_cols(n, images)
    t = functional.tension(z_a, z_b, images=images).detach()
    shuffled = shuffled_tension(z_a, z_b, images=images, generator=generator(5)).detach()
    source = permutation_source(t, shuffled, cols)
    naive_t = naive_tension(z_a, z_b)
    expected_t = permuted_tension(naive_t.detach() if detach_tension else naive_t, source)
    torch.testing.assert_close(expected_t.detach()[cols], shuffled, **EXACT)  # self: 0 both
    ours = orl_shuffled_tension(
        z_a, z_b, temperature, 1e-6, detach_tension, images, generator=generator(5)
    )
    naive = naive_orl_given_tension(z_a, z_b, temperature, expected_t, images)
    assert_all_close(value_and_grads(ours, z_a, z_b), value_and_grads(naive, z_a, z_b))


# --- every control -------------------------------------------------------------------------

CONTROLS = {
    "orl_mean_tension": lambda z_a, z_b: orl_mean_tension(z_a, z_b, 0.1),
    "orl_shuffled_tension": lambda z_a, z_b: orl_shuffled_tension(z_a, z_b, 0.1),
    "orl_shuffled_tension_attached": lambda z_a, z_b: orl_shuffled_tension(
        z_a, z_b, 0.1, detach_tension=False
    ),
}


@pytest.mark.parametrize("name", list(CONTROLS))
@pytest.mark.parametrize(
    "case", ["identical_views", "duplicate_rows", "collapse", "zero_difference_pair"]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_stay_finite(name, case, dtype):
    z_a, z_b = degenerate(case, dtype)
    for x in value_and_grads(CONTROLS[name](z_a, z_b), z_a, z_b):
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", list(CONTROLS))
def test_controls_are_ntxent_where_tension_is_undefined(name):
    """Exact alignment: T falls back to 1 for every negative (functional.tension), so c = 1 and
    any shuffle of T is all ones: the controls are NT-Xent, like ORL."""
    z_a, z_b = degenerate("identical_views", torch.float64)
    assert_all_close(
        value_and_grads(CONTROLS[name](z_a, z_b), z_a, z_b),
        value_and_grads(functional.ntxent(z_a, z_b, 0.1), z_a, z_b),
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_upcast(dtype):
    z_a, z_b = (z.detach().to(dtype) for z in views(16, 32, torch.float32))
    loss = orl_mean_tension(z_a, z_b, 0.5)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, orl_mean_tension(z_a.float(), z_b.float(), 0.5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(orl_mean_tension(z_a.float(), z_b.float(), 0.5), loss)
    shuffled = orl_shuffled_tension(z_a, z_b, 0.5, generator=generator(0))
    expected = orl_shuffled_tension(z_a.float(), z_b.float(), 0.5, generator=generator(0))
    assert shuffled.dtype == torch.float32 and torch.equal(shuffled, expected)


def test_modules_equal_functional():
    z_a, z_b = views(8, 16, torch.float32)
    assert torch.equal(
        ORLMeanTensionLoss(0.2, t_min=1e-3)(z_a, z_b), orl_mean_tension(z_a, z_b, 0.2, 1e-3)
    )
    torch.manual_seed(0)
    ours = ORLShuffledTensionLoss(0.2, t_min=1e-3, detach_tension=False)(z_a, z_b)
    torch.manual_seed(0)
    assert torch.equal(ours, orl_shuffled_tension(z_a, z_b, 0.2, 1e-3, False))
    assert ORLShuffledTensionLoss().detach_tension  # the documented default


@pytest.mark.parametrize("loss_cls", [ORLMeanTensionLoss, ORLShuffledTensionLoss])
def test_gather_distributed_without_process_group_is_the_local_loss(loss_cls):
    z_a, z_b = views(8, 16, torch.float32)
    torch.manual_seed(0)
    local = loss_cls()(z_a, z_b)
    torch.manual_seed(0)
    assert torch.equal(loss_cls(gather_distributed=True)(z_a, z_b), local)


@pytest.mark.parametrize("loss_cls", [ORLMeanTensionLoss, ORLShuffledTensionLoss])
def test_invalid_arguments(loss_cls):
    with pytest.raises(ValueError, match=r"^temperature=0 is invalid: must be > 0$"):
        loss_cls(temperature=0)
    with pytest.raises(ValueError, match=r"^t_min=1.5 is invalid: must be in \(0, 1\]"):
        loss_cls(t_min=1.5)
    z_a, z_b = views(1, 8)
    with pytest.raises(ValueError, match=r"^z_a has N=1 rows: .* needs N >= 2"):
        loss_cls()(z_a, z_b)


# --- DDP: the batch mean of T is the global batch's -----------------------------------------


NEGATIVES = ("all", "cross_view", "within_view")


def _rank_mean_tension(rank: int) -> dict:
    z_a, z_b = (z[rows(rank)].clone().requires_grad_() for z in global_views())
    out = {}
    for negatives in NEGATIVES:
        loss = ORLMeanTensionLoss(0.2, gather_distributed=True, negatives=negatives)(z_a, z_b)
        out[negatives] = (loss.detach(), *torch.autograd.grad(loss, (z_a, z_b)))
    return out


def test_mean_tension_across_processes_equals_the_one_process_loss(tmp_path):
    """2 gloo processes, float64: the mean of the ranks' losses is the one-process loss on the
    concatenated batch, and each rank's gradient / WORLD its rows of the one-process gradient,
    for each choice of negatives. Without the all-reduce of T's sum and count, each rank would
    use its own rows' mean."""
    per_rank = spawn(_rank_mean_tension, tmp_path)
    z_a, z_b = (z.requires_grad_() for z in global_views())
    for negatives in NEGATIVES:
        loss = ORLMeanTensionLoss(0.2, negatives=negatives)(z_a, z_b)
        grad_a, grad_b = torch.autograd.grad(loss, (z_a, z_b))
        outs = [out[negatives] for out in per_rank]
        diffs = [(torch.stack([out[0] for out in outs]).mean() - loss.detach()).abs()]
        for rank, (_, rank_grad_a, rank_grad_b) in enumerate(outs):
            diffs.append((rank_grad_a / WORLD - grad_a[rows(rank)]).abs().max())
            diffs.append((rank_grad_b / WORLD - grad_b[rows(rank)]).abs().max())
        diff = float(torch.stack(diffs).max())
        print(f"orl_mean_tension {negatives}, 2 processes vs one: max abs difference {diff:.1e}")
        assert diff < 1e-9, negatives
    loss = ORLMeanTensionLoss(0.2)(z_a, z_b)
    # The ranks' own means differ from the global one: the all-reduce is what makes them equal.
    local = [orl_mean_tension(*(z[rows(r)] for z in global_views()), 0.2) for r in range(WORLD)]
    assert (torch.stack(local).mean() - loss.detach()).abs() > 1e-3


# --- configs -------------------------------------------------------------------------------


def test_orl_detached_config_is_orl_with_detached_tension(train_config):
    detached = instantiate(train_config("loss=orl_detached").loss)
    via_override = instantiate(train_config("loss=orl", "loss.detach_tension=true").loss)
    assert isinstance(detached, ORLLoss) and detached.detach_tension
    assert vars(detached) == vars(via_override)
    assert not instantiate(train_config("loss=orl").loss).detach_tension


def test_orl_controls_experiment_composes_every_job(train_config):
    """`-m +experiment=orl_controls`: MNIST, and a sweep of the 5 losses over 3 seeds, each
    composing to the loss it names at the same temperature."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        composed = compose("train", ["+experiment=orl_controls"], return_hydra_config=True)
    params = composed.hydra.sweeper.params
    assert params.loss.split(",") == [
        "ntxent",
        "orl",
        "orl_mean_tension",
        "orl_shuffled_tension",
        "orl_detached",
    ]
    assert params.seed.split(",") == ["0", "1", "2"]
    classes = {
        "ntxent": "NTXentLoss",
        "orl": "ORLLoss",
        "orl_mean_tension": "ORLMeanTensionLoss",
        "orl_shuffled_tension": "ORLShuffledTensionLoss",
        "orl_detached": "ORLLoss",
    }
    for name in params.loss.split(","):
        for seed in params.seed.split(","):
            cfg = train_config("+experiment=orl_controls", f"loss={name}", f"seed={seed}")
            assert cfg.dataset._target_ == "orbitcl.data.MNISTDataModule"
            assert cfg.seed == int(seed)
            loss = instantiate(cfg.loss)
            assert type(loss).__name__ == classes[name] and loss.temperature == 0.5
            assert getattr(loss, "detach_tension", None) is not (name == "orl")
    # orl_mnist_fast's speed recipe at a CPU-sized schedule; checkpoints kept for the figures.
    assert (cfg.dataset.batch_size, cfg.trainer.precision, cfg.model.channels_last) == (
        64,
        "bf16-mixed",
        True,
    )
    assert cfg.trainer.max_steps == 600 and cfg.callbacks.checkpoint.save_last
    assert cfg.callbacks.umap is None and cfg.callbacks.orbit.n_anchors == 200
    assert cfg.study.against == [n for n in params.loss.split(",") if n != "orl"]

"""`-m +experiment=beyond_negatives` composes: every job builds the loss it names on MNIST at
the study's schedule, and its study (claims against the objectives without negatives) passes
the check the sweep runs before its first job."""

from hydra.utils import instantiate

from orbitcl.experiments.sweep import SweepReport

CLASSES = {
    "ntxent": "NTXentLoss",
    "orl": "ORLLoss",
    "simsiam": "SimSiamLoss",
    "byol": "BYOLLoss",
    "vicreg": "VICRegLoss",
    "barlow_twins": "BarlowTwinsLoss",
}


def test_every_job_composes_and_the_study_is_valid(train_config, tmp_path):
    composed = train_config(
        "+experiment=beyond_negatives", f"hydra.sweep.dir={tmp_path}", hydra=True
    )
    params = composed.hydra.sweeper.params
    losses = params.loss.split(",")
    assert losses == list(CLASSES) and params.seed.split(",") == ["0", "1", "2"]
    SweepReport().on_multirun_start(composed)  # raises SystemExit(2) on a bad study
    assert (tmp_path / "multirun.yaml").is_file()
    study = composed.study
    assert study.reference == "ntxent"
    # The claims are about the objectives without negatives, each one the sweep runs.
    assert study.against == [
        n for n in losses if not instantiate(train_config(f"loss={n}").loss).contrasts_negatives
    ]
    assert {c.metric: c.expect for c in study.claims} == {
        "orbit/anchor_view_cos": "lower",
        "orbit/variance": "higher",
        "geometry/uniformity": "lower",
    }
    assert {"val/knn_acc", "spectrum/rankme", "spectrum/alpha", "collapse/std"} <= set(study.report)
    for name in losses:
        cfg = train_config("+experiment=beyond_negatives", f"loss={name}", "seed=1")
        assert type(instantiate(cfg.loss)).__name__ == CLASSES[name]
        assert cfg.dataset._target_ == "orbitcl.data.MNISTDataModule" and cfg.seed == 1
        assert (cfg.dataset.batch_size, cfg.trainer.max_steps, cfg.trainer.precision) == (
            64,
            200,
            "bf16-mixed",
        )
        assert cfg.callbacks.umap is None and cfg.callbacks.collapse.n_images == 500
        # SimSiam and BYOL bring their predictors (model.predictor), the others none.
        widths = {"simsiam": 32, "byol": 256}
        assert cfg.model.get("predictor", {}).get("hidden_dim") == widths.get(name)

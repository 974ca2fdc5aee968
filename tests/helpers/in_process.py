"""Training in the test's own process, through `orbitcl.training.fit.train` (no ~10 s of imports
per run): the overrides that put a run's files in one directory without Hydra's runtime, and the
small sizes that keep every default diagnostic on and fast."""

from pathlib import Path


def run_dir_overrides(run_dir: Path) -> list[str]:
    """What `${hydra:runtime.output_dir}` would give, for a config composed without a run."""
    return [
        f"trainer.default_root_dir={run_dir}",
        f"callbacks.checkpoint.dirpath={run_dir / 'checkpoints'}",
        "logger=csv",
        f"logger.save_dir={run_dir}",
    ]


# 3 steps and one validation on one batch of bank and queries, every default callback on, each
# on a few images (UMAP on 24 points), on a small model, without DataLoader workers.
SMALL_RUN = [
    "model=conv_small",
    "trainer.max_steps=3",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "dataset.batch_size=8",
    "dataset.eval_batch_size=64",
    "dataset.num_workers=0",
    "callbacks.tension.every_n_steps=1",
    "callbacks.orbit.n_anchors=8",
    "callbacks.orbit.n_views=2",
    "callbacks.class_geometry.n_per_class=4",
    "callbacks.similarity.n_images=16",
    "callbacks.similarity.every_n_steps=2",
    "callbacks.umap.n_images=12",
    "callbacks.umap.n_views=2",
    "callbacks.umap.n_neighbors=4",
]

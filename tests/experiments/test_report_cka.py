"""The study report's CKA tables (orbitcl.experiments.report.cka) on digits run directories
written by the test: a setting whose seed-0 run is a rotated copy of another's has CKA 1 with
it; two seeds of one setting (different initialisations) have less."""

import json

import pytest
import torch
from helpers.run_dirs import rotated, write_run

from orbitcl.experiments.report.cka import cka_report
from orbitcl.training.config import build


def test_cka_between_settings_and_across_seeds(tmp_path, train_config):
    cfg = train_config("dataset=digits")
    cfg.dataset.num_workers = 0
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        encoder = build("model.encoder", cfg.model.encoder)
        models.append(
            (encoder, build("model.projector", cfg.model.projector, in_dim=encoder.out_dim))
        )
    jobs = [
        {"job": "0", "status": "ok", "swept": {"loss": "a", "seed": 0}},
        {"job": "1", "status": "ok", "swept": {"loss": "a", "seed": 1}},
        {"job": "2", "status": "ok", "swept": {"loss": "b", "seed": 0}},
        {"job": "3", "status": "failed", "swept": {"loss": "b", "seed": 1}},
    ]
    write_run(tmp_path / "0", cfg, *models[0])
    write_run(tmp_path / "1", cfg, *models[1])
    write_run(tmp_path / "2", cfg, models[0][0], rotated(models[0][1]))
    text = cka_report(tmp_path, jobs, "seed")
    assert "Between settings" in text and "Within each setting" in text
    record = json.loads((tmp_path / "sweep_report_cka.json").read_text())
    assert record["settings"] == ["loss=a", "loss=b"]
    assert record["between"][0][1] == pytest.approx(1.0, abs=1e-5)
    assert record["between"][0][0] == pytest.approx(1.0, abs=1e-9)
    assert len(record["within"]["loss=a"]) == 1 and record["within"]["loss=a"][0] < 0.999
    assert record["within"]["loss=b"] == []
    assert cka_report(tmp_path, jobs[:1], "seed") is None

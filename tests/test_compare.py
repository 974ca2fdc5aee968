"""`python -m orbitcl.compare` in process on digits run directories written by the test: a run
against itself, and against a copy whose projector's last layer is rotated (the loss cannot
tell them apart): CKA 1 and Procrustes 0 on the projections; an untrusted run is refused."""

import pytest
import torch
from helpers.run_dirs import rotated, write_run
from omegaconf import OmegaConf

from orbitcl import compare
from orbitcl.training.config import build


@pytest.fixture
def runs(tmp_path, train_config):
    cfg = train_config("dataset=digits")
    cfg.dataset.num_workers = 0
    torch.manual_seed(0)
    encoder = build("model.encoder", cfg.model.encoder)
    projector = build("model.projector", cfg.model.projector, in_dim=encoder.out_dim)
    write_run(tmp_path / "a", cfg, encoder, projector)
    write_run(tmp_path / "b", cfg, encoder, rotated(projector))
    return tmp_path / "a", tmp_path / "b"


def table(text):
    rows = [
        line.split("|")[1:-1]
        for line in text.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    return {r[0].strip(): [float(v) for v in r[1:]] for r in rows[1:]}


def test_a_run_against_itself_and_a_rotated_copy(runs, capsys):
    a, b = runs
    assert compare.main([str(a), str(a), "--images", "300"]) == 0
    for space, (cka, cka_unbiased, procrustes) in table(capsys.readouterr().out).items():
        assert cka == pytest.approx(1.0, abs=1e-6), space
        assert cka_unbiased == pytest.approx(1.0, abs=1e-6), space
        assert procrustes == pytest.approx(0.0, abs=1e-3), space
    assert compare.main([str(a), str(b), "--features", "projector", "--images", "300"]) == 0
    rows = table(capsys.readouterr().out)
    assert list(rows) == ["projector"]
    cka, _, procrustes = rows["projector"]
    assert cka == pytest.approx(1.0, abs=1e-5)
    assert procrustes == pytest.approx(0.0, abs=2e-3)


def test_bad_features_and_untrusted_runs_are_refused(runs, capsys):
    a, _ = runs
    assert compare.main([str(a), str(a), "--features", "decoder"]) == 2
    assert "--features='decoder' is invalid" in capsys.readouterr().err
    cfg = OmegaConf.load(a / ".hydra" / "config.yaml")
    cfg.model.encoder._target_ = "os.system"
    OmegaConf.save(cfg, a / ".hydra" / "config.yaml")
    assert compare.main([str(a), str(a)]) == 2
    assert "os.system" in capsys.readouterr().err

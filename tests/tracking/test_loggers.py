"""W&B never prompts, hangs or stops training: it decides to go offline, and says so."""

import http.server
import threading

import pytest
import wandb

from orbitcl.tracking.loggers import wandb_logger, wandb_mode


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    yield
    wandb.finish()


def test_explicit_offline_is_obeyed(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode()[0] == "offline"


def test_no_login_means_offline(no_wandb_env):
    mode, reason = wandb_mode()
    assert mode == "offline" and "wandb login" in reason


def test_unreachable_server_means_offline(no_wandb_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # discard port: refused
    mode, reason = wandb_mode()
    assert mode == "offline" and "not reachable" in reason


class Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 -- the http.server API
        self.send_response(401)
        self.end_headers()

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args):
        pass


def test_failing_service_falls_back_to_an_offline_run(no_wandb_env, monkeypatch, tmp_path, caplog):
    server = http.server.HTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
    try:
        logger = wandb_logger(str(tmp_path), project="orbitcl-test", name="fallback")
        logger.log_metrics({"train/loss": 1.0}, step=0)
        assert logger.experiment.settings.mode == "offline"
    finally:
        wandb.finish()
        server.shutdown()
    assert "could not start online" in caplog.text
    assert list((tmp_path / "wandb").glob("offline-run-*"))

"""The documentation site builds with `mkdocs build --strict`: a broken link, a link to a
missing section, an API reference to a missing object or a failing hook fails this test."""

import os
import subprocess
import sys

from helpers.paths import ROOT


def test_site_builds_strictly_with_the_generated_loss_table(tmp_path):
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    losses = (tmp_path / "losses" / "index.html").read_text()
    assert "<!-- loss-table -->" not in losses
    # a row per loss config, its formula linked into the API reference
    for name in sorted(p.stem for p in (ROOT / "src/orbitcl/conf/loss").glob("*.yaml")):
        assert f"loss={name}</code>" in losses, name
    assert 'href="../api/#orbitcl.losses.functional.orl"' in losses
    assert (tmp_path / "api" / "index.html").is_file()

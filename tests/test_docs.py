"""The Sphinx documentation builds without a single warning, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    # Without FCNET_DOCS_INTERSPHINX the build fetches nothing from the network.
    env = {k: v for k, v in os.environ.items() if k != "FCNET_DOCS_INTERSPHINX"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "html" / "api.html").is_file()
    assert "furo.css" in (tmp_path / "html" / "index.html").read_text(encoding="utf-8")

"""scripts/setup.sh, the first half of README's two commands: its failures say what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _copy_of_the_project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    for name in ("pyproject.toml", "constraints-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _setup(project: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(project / "scripts" / "setup.sh")],
        env={**os.environ, "FCNET_SKIP_APT": "1", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_too_little_disk_is_refused_before_the_environment_is_made(tmp_path):
    project = _copy_of_the_project(tmp_path)
    run = _setup(project, FCNET_SETUP_MIN_FREE_GB=str(10**9))
    assert run.returncode == 1
    assert "needs about 1000000000 GB of free disk" in run.stderr
    assert "FCNET_SETUP_MIN_FREE_GB=0" in run.stderr
    assert not (project / ".venv").exists()


def test_a_failed_pip_is_reported_as_such_and_nothing_is_marked_installed(tmp_path):
    project = _copy_of_the_project(tmp_path)
    python = project / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/sh\n"
        "echo 'ERROR: Could not install packages due to an OSError: [Errno 28]' >&2\n"
        "exit 1\n"
    )
    python.chmod(0o755)
    run = _setup(project)
    assert run.returncode == 1
    assert "[Errno 28]" in run.stderr
    assert "setup: pip failed (exit 1" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (project / ".venv" / ".fcnet-setup-stamp").exists()

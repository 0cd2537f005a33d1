"""README.md: its first block holds the two commands; its quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_block_has_the_two_commands_and_ci_runs_the_second():
    first = re.search(r"```\w*\n(.*?)```", README, flags=re.S).group(1)
    commands = [c for c in first.splitlines() if c.strip() and not c.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "fashion_mnist_baseline.py" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.integration
def test_quickstart_snippet_runs(capsys):
    code = _blocks("python")[0]
    assert "epochs=25" in code
    # The snippet as written, shortened to one epoch to keep the suite quick.
    exec(compile(code.replace("epochs=25", "epochs=1"), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    accuracy = float(re.search(r"'accuracy': ([0-9.]+)", printed).group(1))
    assert accuracy > 0.75

"""CI runs exactly the commands the README gives, so a new user's first steps are what CI tests."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("python -m pip install")]


def test_ci_runs_the_readme_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"README command not run by .ci/run: {command}"


def test_readme_links_exist() -> None:
    for target in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / target).is_file(), target

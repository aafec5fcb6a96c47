"""The README documents every environment variable and holds the two quickstart commands."""

from __future__ import annotations

import re
from pathlib import Path

from ruta.config import VARIABLES

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_variable_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.M))
    assert documented == set(VARIABLES)


def test_quickstart_has_the_run_and_the_test_command() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", quickstart)
    assert len(commands) == 2
    assert commands[0].endswith("ruta dev")
    assert commands[1].endswith("pytest")

"""The documented commands, as written: each runnable one in the README and in the guides of
docs/ composes and validates."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Dict, List

import pytest

from helpers import REPO, cli

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_commands(paths: List[Path] = DOCUMENTS) -> List[str]:
    """Every ``python -m inktrace_train ...`` line of the ```bash blocks of ``paths``, once each,
    in order; placeholders (<run>, ~/, a|b, ...) and resumes (they need a run) are left out."""
    commands: Dict[str, None] = {}  # ordered, and a command in two documents runs once
    for path in paths:
        blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), re.S)
        for line in (ln for b in blocks for ln in b.splitlines()):
            line = line.split("  #")[0].strip()
            if line.startswith("python -m inktrace_train ") and not re.search(r"[<~|]|\.\.\.|\+resume", line):
                commands[line] = None
    return list(commands)


def test_the_readme_documents_the_main_commands():
    commands = documented_commands([REPO / "README.md"])
    for expected in (
        "python -m inktrace_train stage=all",
        "python -m inktrace_train sweep=lr",
        "python -m inktrace_train -m training.lr=1e-3,5e-4,1e-4",
        "python -m inktrace_train experiment=large_model",
    ):
        assert expected in commands


def test_the_guides_are_read():
    """Each guide the README links to exists, and the commands of the guides are checked too."""
    linked = re.findall(r"\]\((docs/[\w.-]+\.md)", (REPO / "README.md").read_text())
    assert "docs/layout.md" in linked
    present = [p for p in linked if (REPO / p).is_file()]
    assert len(present) >= 10, f"only {present} of {linked} exist"
    assert len(documented_commands()) > len(documented_commands([REPO / "README.md"]))


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_composes(workdir, command):
    """Sweeps (-m) cannot print a config (Hydra), so they run for real in test_sweeps.py."""
    args = shlex.split(command)[3:]
    if "-m" in args:
        proc = cli(args + ["--cfg", "job"], cwd=workdir)
        assert proc.returncode == 2 and "drop -m/--multirun" in proc.stderr
        return
    if "--cfg" not in args:
        args += ["--cfg", "job"]
    proc = cli(args, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "training:" in proc.stdout
    assert not (workdir / "outputs").exists()

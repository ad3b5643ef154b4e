"""The README's commands, as written: each runnable one composes and validates."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import REPO, run_cli


def readme_commands():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = []
    for line in (ln for b in blocks for ln in b.splitlines()):
        line = line.split("  #")[0].strip()
        if line.startswith("python -m inktrace_train ") and not re.search(r"[<~|]|\.\.\.|\+resume", line):
            commands.append(line)
    return commands


def test_the_readme_documents_the_main_commands():
    commands = readme_commands()
    for expected in (
        "python -m inktrace_train stage=all",
        "python -m inktrace_train sweep=lr",
        "python -m inktrace_train -m training.lr=1e-3,5e-4,1e-4",
        "python -m inktrace_train experiment=large_model",
    ):
        assert expected in commands


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_composes(workdir, command):
    """Sweeps (-m) cannot print a config (Hydra), so they run for real in test_sweeps.py."""
    args = shlex.split(command)[3:]
    if "-m" in args:
        proc = run_cli(args + ["--cfg", "job"], cwd=workdir, timeout=120)
        assert proc.returncode == 2 and "drop -m/--multirun" in proc.stderr
        return
    if "--cfg" not in args:
        args += ["--cfg", "job"]
    proc = run_cli(args, cwd=workdir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "training:" in proc.stdout
    assert not (workdir / "outputs").exists()

"""Shared helpers: run the documented command as a user would, in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]

# The smallest real run: tiny model, synthetic strokes, one short epoch.
TINY = ["model=tiny", "data=synthetic", "training.epochs=1", "data.train_samples=64",
        "data.val_samples=32", "training.batch_size=16", "data.num_workers=0"]


def run_cli(args: List[str], cwd: Path, module: str = "inktrace_train", timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m inktrace_train ARGS`` in ``cwd``; returns the finished process."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d

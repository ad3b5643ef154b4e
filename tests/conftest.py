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


def write_old_checkpoints(directory: Path) -> dict:
    """One small file per older checkpoint layout the converter reads, from a tiny model:
    a bare state_dict, the old dense script's {"model", "optimizer"}, and the unversioned
    {"model_state_dict"} with flat config keys. Returns the objects saved, by layout."""
    import torch

    from inktrace_train.model import InkTraceModel

    model = InkTraceModel(embed_dim=32, num_layers=1, num_heads=2, mlp_ratio=4.0, dropout=0.0,
                          stem_channels=[8, 16, 32], decoder_channels=[32, 16, 8], full_heads=False)
    sd = model.state_dict()
    files = {
        "bare": sd,
        "model-dict": {"model": sd, "optimizer": torch.optim.AdamW(model.parameters()).state_dict(), "epoch": 0},
        "flat": {"model_state_dict": sd, "embed_dim": 32, "num_layers": 1, "lr": 2e-3, "epoch": 0},
    }
    for name, obj in files.items():
        torch.save(obj, directory / f"{name}.pth")
    return files

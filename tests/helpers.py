"""What the tests share (``from helpers import ...``): the tiny run's overrides, the documented
command run as a user would in a scratch directory, a run killed at a chosen point, and the one
way to read what a run saved."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List

import pytest

REPO = Path(__file__).resolve().parents[1]

# The smallest real run: tiny model, synthetic strokes, one epoch of 2 steps, no worker processes.
TINY = [
    "model=tiny",
    "data=synthetic",
    "training.epochs=1",
    "data.train_samples=64",
    "data.val_samples=32",
    "training.batch_size=32",
    "data.num_workers=0",
]


def _importable(name: str) -> bool:
    """Whether an optional extra's module is installed (find_spec of a submodule raises without its parent)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


needs_submitit = pytest.mark.skipif(
    not _importable("hydra_plugins.hydra_submitit_launcher"),
    reason='the slurm extra is not installed (pip install -e ".[slurm]")',
)


needs_optuna = pytest.mark.skipif(
    not _importable("hydra_plugins.hydra_optuna_sweeper"),
    reason='the sweep extra is not installed (pip install -e ".[sweep]")',
)


def rows(sweep: Path) -> list:
    """The rows of a sweep's summary.csv."""
    import csv

    with open(sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


def tiny(*changes: str) -> List[str]:
    """TINY with ``changes`` (``"training.epochs=3"``, ``"stage=all"``): one replaces the entry
    with the same key, the others are appended."""
    keys = {c.split("=", 1)[0] for c in changes}
    return [o for o in TINY if o.split("=", 1)[0] not in keys] + list(changes)


def run_cli(
    args: List[str], cwd: Path, module: str = "inktrace_train", timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``python -m inktrace_train ARGS`` in ``cwd``; returns the finished process."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def cli(args: List[str], cwd: Path, module: str = "inktrace_train") -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` run in this process, in ``cwd``: what :func:`run_cli` returns,
    without a new interpreter (0.1 s instead of 2-3 s). For config and command-line errors and
    ``--cfg``; a test where the process boundary is the point (signals, exit of workers, a real
    training run's import of torch) uses :func:`run_cli`."""
    from hydra.core.global_hydra import GlobalHydra

    import inktrace_train.__main__ as entry

    GlobalHydra.instance().clear()
    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, here, sweep = sys.argv, os.getcwd(), entry.SWEEP
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # Hydra configures logging for its job
    entry.SWEEP = entry.SweepState()
    sys.argv = [module, *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if module == "inktrace_train":
                entry.main()
            else:
                importlib.import_module(module).main(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, entry.SWEEP = argv, sweep
        os.chdir(here)
        GlobalHydra.instance().clear()
        root.handlers[:], root.level = handlers, level
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def tiny_model():
    """An InkTraceModel of the tiny config (67 k parameters), structural heads."""
    from inktrace_train.model.network import InkTraceModel

    return InkTraceModel(
        embed_dim=32,
        num_layers=1,
        num_heads=2,
        mlp_ratio=4.0,
        dropout=0.0,
        stem_channels=[8, 16, 32],
        decoder_channels=[32, 16, 8],
        full_heads=False,
    )


def write_old_checkpoints(directory: Path) -> dict:
    """One small file per older checkpoint layout the converter reads, from a tiny model:
    a bare state_dict, the old dense script's {"model", "optimizer"}, and the unversioned
    {"model_state_dict"} with flat config keys. Returns the objects saved, by layout."""
    import torch

    model = tiny_model()
    sd = model.state_dict()
    files = {
        "bare": sd,
        "model-dict": {"model": sd, "optimizer": torch.optim.AdamW(model.parameters()).state_dict(), "epoch": 0},
        "flat": {"model_state_dict": sd, "embed_dim": 32, "num_layers": 1, "lr": 2e-3, "epoch": 0},
    }
    for name, obj in files.items():
        torch.save(obj, directory / f"{name}.pth")
    return files


def latest_step(run_dir: Path, stage: str = "structural") -> tuple[int, int]:
    """(global step, epoch) of the stage's checkpoint_latest.pth per its manifest; (-1, -1) before one.
    The manifest records a file just before its rename (see CheckpointManager._write): until the
    file itself is there, the stage has saved nothing a resume could read."""
    directory = run_dir / f"checkpoints/{stage}"
    try:
        entry = json.loads((directory / "manifest.json").read_text())["files"]["checkpoint_latest.pth"]
    except (OSError, ValueError, KeyError):
        return -1, -1
    if not (directory / "checkpoint_latest.pth").is_file():
        return -1, -1
    return entry["global_step"], entry["epoch"]


def kill_when(args: List[str], cwd: Path, ready: Callable[[], bool], timeout: float = 240) -> None:
    """Start ``python -m inktrace_train ARGS`` in ``cwd`` and SIGKILL it as soon as ``ready()``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_at_step(args: List[str], cwd: Path, run_dir: Path, min_step: int, stage: str = "structural") -> None:
    """A run into ``run_dir``, killed once the stage's latest checkpoint reaches ``min_step``."""
    kill_when([*args, f"hydra.run.dir={run_dir}"], cwd, lambda: latest_step(cwd / run_dir, stage)[0] >= min_step)


def saved(path: Path, stage: str = "structural", name: str = "checkpoint_latest.pth") -> dict:
    """A checkpoint as plain PyTorch reads it: a file, or a run directory's ``name`` of ``stage``."""
    import torch

    path = Path(path)
    return torch.load(path if path.is_file() else path / "checkpoints" / stage / name, weights_only=True)

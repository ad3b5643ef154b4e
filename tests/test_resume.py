"""Tier 2: a run killed at any point and resumed with `+resume=PATH` alone matches the
uninterrupted run bit for bit: per-step losses and final weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli

# 3 epochs of 4 steps; every step logged so the loss sequence is compared step by step.
RUN = ["model=tiny", "data=synthetic", "training.epochs=3", "data.train_samples=128", "data.val_samples=32",
       "training.batch_size=32", "training.log_every_n_steps=1", "training.save_interval=1",
       "training.keep_last_n=2"]


def losses(run_dir: Path) -> dict:
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in events.Scalars("structural/train/total")}


def latest_step(run_dir: Path) -> tuple[int, int]:
    manifest = run_dir / "checkpoints/structural/manifest.json"
    try:
        entry = json.loads(manifest.read_text())["files"]["checkpoint_latest.pth"]
    except (OSError, ValueError, KeyError):
        return -1, -1
    return entry["global_step"], entry["epoch"]


def kill_when(args: list, cwd: Path, run_dir: Path, min_step: int) -> None:
    """Start a run and SIGKILL it as soon as its latest checkpoint reaches ``min_step``."""
    proc = subprocess.Popen([sys.executable, "-m", "inktrace_train", *args, f"hydra.run.dir={run_dir}"],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while latest_step(cwd / run_dir)[0] < min_step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("workers,mid_epoch", [(0, False), (0, True), (2, True)])
def test_killed_and_resumed_run_matches_the_uninterrupted_run(workdir, workers, mid_epoch):
    args = RUN + [f"data.num_workers={workers}"]
    if mid_epoch:
        args.append("training.save_every_n_steps=1")
    assert run_cli(args + ["hydra.run.dir=full"], cwd=workdir).returncode == 0
    kill_when(args, workdir, Path("cut"), min_step=6 if mid_epoch else 4)
    step, epoch = latest_step(workdir / "cut")
    assert 0 < step < 12, "the run was not interrupted"
    status = json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]
    assert status["status"] == "running"

    proc = run_cli(["+resume=cut"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    full, cut = losses(workdir / "full"), losses(workdir / "cut")
    assert sorted(cut) == sorted(full) == list(range(1, 13))  # replayed steps purged, none missing
    assert cut == full  # exact float equality, step by step
    a = torch.load(workdir / "full/checkpoints/structural/checkpoint_latest.pth", weights_only=True)
    b = torch.load(workdir / "cut/checkpoints/structural/checkpoint_latest.pth", weights_only=True)
    for name, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][name]), name
    assert a["optimizer_state_dict"]["state"][0]["exp_avg_sq"].equal(b["optimizer_state_dict"]["state"][0]["exp_avg_sq"])
    assert json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]["status"] == "done"
    assert (workdir / "cut/.hydra/overrides.yaml").read_text() == (workdir / "full/.hydra/overrides.yaml").read_text().replace("full", "cut")

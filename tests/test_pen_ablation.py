"""scripts/pen_ablation.py, the pen-options ablation: run as its docstring says, shortened for a CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO, run_cli, saved, tiny

SCRIPT = REPO / "scripts" / "pen_ablation.py"
SHORT = ["model=tiny", "data.train_samples=64", "data.val_samples=32", "training.batch_size=32", "data.num_workers=0"]


def ablation(tmp_path, start, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, str(SCRIPT), str(start), "--hanzi-dir", str(REPO / "tests" / "data" / "hanzi"),
        "--fonts-dir", str(REPO / "tests" / "data" / "fonts"), "--any-fonts", "--out", str(tmp_path / "abl"),
        "--only", "control", "--epochs", "1", "--n", "4", "--views", "1", *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_overrides_reach_every_variants_training_so_another_backbone_can_be_ablated(tmp_path):
    trained = run_cli(tiny("stage=dense", "hydra.run.dir=base"), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    start = tmp_path / "base" / "checkpoints" / "dense" / "checkpoint_best.pth"

    # Without the override the variant builds the default model, which the tiny weights do not fit.
    refused = ablation(tmp_path, start)
    assert refused.returncode != 0 and "failed:" in refused.stderr and "control" in refused.stderr
    (tmp_path / "abl").rename(tmp_path / "refused")

    proc = ablation(tmp_path, start, "--override", *SHORT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| control | " in proc.stdout  # the classical rows follow where the eval extra is installed
    run = tmp_path / "abl" / "control" / "run"
    config = saved(run / "checkpoints" / "dense" / "checkpoint_best.pth")["config"]
    assert config["model"]["embed_dim"] == 32 and config["data"]["train_samples"] == 64  # model=tiny
    assert config["data"]["source"] == "mixed" and config["stage"]["init_from"] == str(start)
    assert (tmp_path / "abl" / "control" / "val_views1.json").is_file()


def test_a_run_after_the_overrides_is_named_not_taken_for_one(tmp_path):
    """--override takes every word up to the next option: a RUN put after it was an override."""
    command = [sys.executable, str(SCRIPT), "--hanzi-dir", "h", "--fonts-dir", "f", "--out", str(tmp_path / "abl")]
    proc = subprocess.run([*command, "--override", "model=tiny", "run_dir"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--override takes KEY=VALUE items, not 'run_dir'" in proc.stderr
    assert not (tmp_path / "abl").exists()

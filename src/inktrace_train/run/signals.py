"""A polite stop: SIGTERM or SIGUSR1 (what Slurm sends before it preempts a job, and what
schedulers send to stop one) asks the run to stop; it does not kill it.

The handler only sets a flag (no I/O, so a signal can never tear a write). The trainer looks
at the flag at each log interval, all ranks agree on it there, and the run writes a step-level
checkpoint and exits with ``PREEMPTED_EXIT`` (75, EX_TEMPFAIL: "try again"). At most one log
interval of work is lost; ``+resume=`` continues exactly.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Dict, Optional

PREEMPTED_EXIT = 75  # the exit status of a run stopped by a signal after saving; resume it
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Set by SIGTERM/SIGUSR1 once :meth:`install` has run (main thread only)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
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
        if callable(handler):
            handler(self.signum, None)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum  # nothing else: a second signal during the save changes nothing

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "no signal"


class Preempted(Exception):
    """The run stopped at a signal's request after writing a checkpoint."""

    def __init__(self, signal_name: str, stage: str, epoch: int, global_step: int):
        super().__init__(
            f"stopped by {signal_name} in stage {stage} at epoch {epoch + 1}, optimizer step "
            f"{global_step}; a checkpoint of that step is saved"
        )
        self.signal_name, self.stage = signal_name, stage

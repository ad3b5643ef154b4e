"""TensorBoard's ``SummaryWriter`` in a process of its own.

TensorBoard's event writer is pure Python down to each record's checksum, and all of that work
holds the interpreter lock: a writer thread inside the training process slows the very loop it
should free (``benchmarks/loop.py`` measures the loop with it). In a child process the loop pays
only for pickling a batch of floats now and then.

One child serves every TensorBoard directory of a training process (each stage's, each job's
of a sweep run in one process), and it can be started before torch is imported
(:func:`shared_process`), so that its own start-up, which imports torch, overlaps the trainer's. It is a
plain ``python -m`` of this module (not a multiprocessing child, which would run the user's
script again under ``spawn``); messages are pickles over its stdin, replies over its stdout.

It ignores the stop signals (SIGINT, SIGTERM, SIGUSR1): a signal to the whole process group
(Ctrl-C, a cluster's preemption or time limit) reaches it too, and the training process still
logs until its last save. It stops when the training process exits, or is gone (its stdin
closes).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import select
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import IO, Any, Dict, Optional

from inktrace_train.run.atomic import cause
from inktrace_train.run.signals import ignore_stop_signals

# Messages: (kind, channel, *arguments). Kinds: open (log_dir, purge_step), scalars (list of
# (tag, value, step, wall time)), image (tag, CHW array, step), hparams (params, metrics),
# flush (request), close (request), exit. A flush or close is answered (request, error or None).
REPLY_WAIT_S = 1.0  # how often a wait for the child looks whether it is still alive
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the package


class EventWriterGone(OSError):
    """The event writer process exited before it was told to (killed, out of memory)."""


def serve(inbox: IO[bytes], outbox: IO[bytes]) -> None:
    """SummaryWriters, one per channel, fed from ``inbox`` until told to exit or the other end
    hangs up. A channel's failed write is kept; its later writes are skipped, and the failure is
    the reply to its next flush or close."""
    from torch.utils.tensorboard import SummaryWriter  # here: the training process never needs it

    writers: Dict[int, Any] = {}
    errors: Dict[int, str] = {}
    while True:
        try:
            kind, channel, *args = pickle.load(inbox)
        except (EOFError, OSError):  # the training process is gone: keep what was written
            kind, channel, args = "exit", None, []
        if kind == "exit":
            for writer in writers.values():
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()
            return
        try:
            if kind == "open":
                writers[channel] = SummaryWriter(args[0], purge_step=args[1])
            elif channel not in errors:
                _write(writers[channel], kind, args)
        except (OSError, RuntimeError) as e:  # TensorBoard's thread failed: it re-raises here
            errors.setdefault(channel, cause(e))
        if kind in ("flush", "close"):
            error = errors.pop(channel, None) if kind == "close" else errors.get(channel)
            if kind == "close":
                writers.pop(channel, None)
            with contextlib.suppress(OSError):  # no one left to tell
                pickle.dump((args[0], error), outbox)
                outbox.flush()


def _write(writer: Any, kind: str, args: list) -> None:
    if kind == "scalars":
        for tag, value, step, wall_time in args[0]:
            writer.add_scalar(tag, value, step, walltime=wall_time)
    elif kind == "image":
        writer.add_image(*args)
    elif kind == "hparams":
        writer.add_hparams(*args, run_name=".")
    elif kind == "flush":
        writer.flush()
    elif kind == "close":
        writer.close()


def _quiet_writer_threads(args: threading.ExceptHookArgs, previous=threading.excepthook) -> None:
    """TensorBoard's event-file thread re-raises a failed write (disk full, folder gone), which
    would print a traceback; the failure reaches the training process as the next flush's reply
    instead. Only write failures of background threads are silenced."""
    if args.thread is threading.main_thread() or not issubclass(args.exc_type, (OSError, RuntimeError)):
        previous(args)


def main() -> None:
    """The child: ``python -m inktrace_train.train.eventwriter``."""
    ignore_stop_signals()
    threading.excepthook = _quiet_writer_threads
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt the replies
    serve(sys.stdin.buffer, outbox)


def _exit(pipe: IO[bytes]) -> None:
    """Tell the child to close every writer and exit; it does not need waiting for."""
    with contextlib.suppress(OSError, ValueError):  # the child is gone already
        pickle.dump(("exit", None), pipe)
        pipe.close()


class EventProcess:
    """The child process of this training process, shared by its :class:`EventWriter`\\ s."""

    def __init__(self) -> None:
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SOURCE_ROOT)] + ([path] if path else [])))
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.channels, self.requests = itertools.count(), itertools.count()
        self._finalizer = weakref.finalize(self, _exit, self.process.stdin)  # at exit, or once dropped

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, *message: Any) -> None:
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (OSError, ValueError):  # a broken pipe, or one closed after the child died
            raise self.gone() from None

    def ask(self, kind: str, channel: int) -> None:
        """Send a flush or close and wait for its answer; raise the channel's failure."""
        request = next(self.requests)
        self.send(kind, channel, request)
        replies = self.process.stdout
        while True:
            while not select.select([replies], [], [], REPLY_WAIT_S)[0]:
                if not self.alive():
                    raise self.gone()
            try:
                answered, error = pickle.load(replies)
            except (EOFError, OSError, pickle.UnpicklingError):
                raise self.gone() from None
            if answered == request:  # (an abandoned channel's answer is passed over)
                break
        if error is not None:
            raise OSError(error)

    def gone(self) -> EventWriterGone:
        try:
            code = self.process.wait(REPLY_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        how = f"signal {-code}" if code is not None and code < 0 else f"code {code}"
        return EventWriterGone(f"the event writer process exited ({how})")


_shared: Optional[EventProcess] = None


def shared_process() -> EventProcess:
    """This process's event writer process, started (again, if it died) on first use. Called
    before torch is imported, its start-up overlaps the caller's."""
    global _shared
    if _shared is None or not _shared.alive():
        _shared = EventProcess()
    return _shared


class EventWriter:
    """One TensorBoard directory, written by the shared child: ``send`` hands over, ``flush``
    waits until everything sent is on disk and raises the first failure (as ``OSError``),
    ``close`` ends the directory's writer. None of them waits for the child's start-up except
    a flush or close."""

    def __init__(self, log_dir: str, purge_step: Optional[int] = None) -> None:
        self.process = shared_process()
        self.channel = next(self.process.channels)
        self.send("open", log_dir, purge_step)

    def send(self, kind: str, *args: Any) -> None:
        self.process.send(kind, self.channel, *args)

    def flush(self) -> None:
        self.process.ask("flush", self.channel)

    def close(self) -> None:
        self.process.ask("close", self.channel)

    def abandon(self) -> None:
        """After a failure: close the directory's writer without waiting for the answer."""
        if self.process.alive():
            with contextlib.suppress(OSError):
                self.process.send("close", self.channel, None)


if __name__ == "__main__":
    main()

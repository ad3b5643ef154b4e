"""Where a run reports: TensorBoard under ``<run_dir>/tb``, the console and ``train.log``.

Every tag starts with the stage name (``structural/train/total``) so one
TensorBoard run shows both stages of a pipeline side by side.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from inktrace_train.evaluation.visualize import prediction_grid
from inktrace_train.run.atomic import WriteError, cause

log = logging.getLogger("inktrace_train")

# Scalars wait as plain floats and go to the scalar thread at most this often (and before every
# checkpoint, image and close), so the loop pays for neither SummaryWriter.add_scalar nor a thread
# wake-up at each log interval.
HAND_OVER_SECONDS = 1.0

Scalar = Tuple[str, float, int, float]  # tag, value, step, wall time


class ScalarThread(threading.Thread):
    """Calls ``SummaryWriter.add_scalar`` (the public API) for the scalars the loop hands over,
    off the loop's thread. A failed write is kept and raised by :meth:`drain`, on the loop's
    thread, as the next write's failure."""

    def __init__(self, writer: SummaryWriter) -> None:
        super().__init__(name="inktrace-scalars", daemon=True)
        self.writer, self.inbox = writer, queue.Queue()
        self.error: Optional[BaseException] = None
        self.start()

    def run(self) -> None:
        while (batch := self.inbox.get()) is not None:
            try:
                if self.error is None:
                    for tag, value, step, wall_time in batch:
                        self.writer.add_scalar(tag, value, step, walltime=wall_time)
            except (OSError, RuntimeError) as e:  # reported by drain(), not as a thread traceback
                self.error = e
            finally:
                self.inbox.task_done()
        self.inbox.task_done()

    def put(self, batch: List[Scalar]) -> None:
        self.inbox.put(batch)

    def drain(self) -> None:
        """Wait until every scalar handed over is written; raise the first failure."""
        self.inbox.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.inbox.put(None)
        self.join()


def _quiet_writer_threads(args: threading.ExceptHookArgs, previous=threading.excepthook) -> None:
    """TensorBoard's own event-file thread re-raises a failed write (disk full, folder gone),
    which would print a traceback; the failure reaches RunLogger at the next write instead, as
    one line. Only write failures of background threads are silenced."""
    if args.thread is threading.main_thread() or not issubclass(args.exc_type, (OSError, RuntimeError)):
        previous(args)


class RunLogger:
    """TensorBoard scalars and images, a tqdm bar per epoch, one log line per epoch.

    Args:
        tb_dir: TensorBoard log directory.
        stage: tag prefix.
        purge_step: on resume, events at or after this step (replayed after a kill) are dropped.
        progress: show tqdm bars (default: only when stderr is a terminal).
        enabled: False on every data-parallel rank but the main one: it writes nothing, shows no bar.
    """

    def __init__(
        self,
        tb_dir: Path,
        stage: str,
        purge_step: Optional[int] = None,
        progress: Optional[bool] = None,
        enabled: bool = True,
    ):
        self.tb_dir, self.writer, self.thread = Path(tb_dir), None, None
        self.pending: List[Tuple[str, Tuple[str, ...], List[float], int, float]] = []  # not yet handed over
        self.handed_at = time.monotonic()
        if enabled:
            threading.excepthook = _quiet_writer_threads
            with self._writing():
                self.writer = SummaryWriter(str(tb_dir), purge_step=purge_step)
            self.thread = ScalarThread(self.writer)
        self.stage = stage
        self.show_progress = enabled and (sys.stderr.isatty() if progress is None else progress)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed TensorBoard write (disk full, directory gone) stops the run with one line; the
        event writer's background thread reports it at the next write, flush or close."""
        try:
            yield
        except (OSError, RuntimeError) as e:
            self.writer = None  # nothing more is written, and close() does not fail twice
            if self.thread is not None:
                self.thread.stop()
                self.thread = None
            raise WriteError(
                f"cannot write TensorBoard events in {self.tb_dir}: {cause(e)}; the checkpoints are intact"
            ) from None

    def progress(self, total: int, initial: int, desc: str) -> tqdm:
        return tqdm(
            total=total,
            initial=initial,
            desc=f"{self.stage} {desc}",
            leave=False,
            dynamic_ncols=True,
            disable=not self.show_progress,
        )

    def progress_line(
        self, bar: tqdm, epoch: int, epochs: int, step: int, steps: int, values: Dict[str, float], eta_s: float
    ) -> None:
        """At each log interval: the bar's postfix on a terminal, else one log line (a log
        file or a Slurm job would otherwise see nothing for a whole epoch)."""
        loss, lr, sps = values.get("total", math.nan), values["lr"], values["samples_per_s"]
        if self.show_progress:
            # refresh=False: drawn at the bar's next tick, not at every log interval; a ready string,
            # not set_postfix's keywords (which it sorts and formats)
            bar.set_postfix_str(f"loss={loss:.4f}, lr={lr:.2e}, sps={sps:.0f}", refresh=False)
            return
        log.info(
            "%s epoch %d/%d step %d/%d | loss %.4f | lr %.2e | %.0f samples/s | ETA %s",
            self.stage,
            epoch + 1,
            epochs,
            step,
            steps,
            loss,
            lr,
            sps,
            timedelta(seconds=round(eta_s)),
        )

    def scalars(self, section: str, values: Dict[str, float], step: int) -> None:
        if self.writer is not None:  # kept as plain floats: the events are made at hand-over
            self.pending.append((section, tuple(values), [float(v) for v in values.values()], step, time.time()))
            if time.monotonic() - self.handed_at >= HAND_OVER_SECONDS:
                self.hand_over()

    def hand_over(self, wait: bool = False) -> None:
        """Give the scalars logged so far to the scalar thread; with ``wait``, until they are
        written (before each checkpoint, so a killed run's events reach at least as far as the
        checkpoint it resumes from)."""
        if self.thread is None:
            return
        if self.pending:
            batch = [
                (f"{self.stage}/{section}/{key}", value, step, wall_time)
                for section, keys, values, step, wall_time in self.pending
                for key, value in zip(keys, values, strict=True)
            ]
            self.thread.put(batch)
        self.pending, self.handed_at = [], time.monotonic()
        if wait:
            with self._writing():
                self.thread.drain()

    def images(self, section: str, batch: Dict[str, torch.Tensor], outputs: Dict[str, torch.Tensor], step: int) -> None:
        if self.writer is None:
            return
        self.hand_over(wait=True)
        with self._writing():
            self.writer.add_image(f"{self.stage}/{section}/predictions", prediction_grid(batch, outputs), step)

    def epoch_summary(self, epoch: int, epochs: int, metric: float, is_best: bool, metrics: Dict[str, float]) -> None:
        """One line per epoch: the metric that picks the best checkpoint, every other metric."""
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if not k.startswith("loss_"))
        log.info(
            "%s epoch %d/%d: metric=%.4f%s | %s | val_loss=%.4f",
            self.stage,
            epoch,
            epochs,
            metric,
            " (best)" if is_best else "",
            shown,
            metrics.get("loss_total", float("nan")),
        )

    def hparams(self, params: Dict[str, object], metrics: Dict[str, float]) -> None:
        """The run's hyper-parameters with its final metrics, for TensorBoard's HParams tab
        (written into this stage's own log directory, not a new sub-run)."""
        if self.writer is None:
            return
        self.hand_over(wait=True)
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        # A stage that never produced a finite metric (NaN losses) has no best: leave it out.
        shown = {f"hparam/{k}": v for k, v in metrics.items() if v is not None and math.isfinite(v)}
        with self._writing():
            self.writer.add_hparams(clean, shown, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.hand_over(wait=True)
            self.thread.stop()
            self.thread = None
            with self._writing():
                self.writer.close()
            self.writer = None

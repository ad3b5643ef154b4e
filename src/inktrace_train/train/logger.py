"""Where a run reports: TensorBoard under ``<run_dir>/tb``, the console and ``train.log``.

Every tag starts with the stage name (``structural/train/total``) so one
TensorBoard run shows both stages of a pipeline side by side.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from inktrace_train.evaluation.visualize import prediction_grid
from inktrace_train.run.atomic import WriteError, cause

log = logging.getLogger("inktrace_train")

# Scalars are handed to TensorBoard's writer at most this often (and at every checkpoint, image,
# close): its thread appends each event to the file, with a pure-Python CRC, and waking it at
# every log interval cost the loop ~7 us per step.
HAND_OVER_SECONDS = 1.0


def _quiet_event_writer(args: threading.ExceptHookArgs, previous=threading.excepthook) -> None:
    """TensorBoard's event-writer thread re-raises its failure, which would print a traceback;
    the failure reaches RunLogger at the next write instead (as one line)."""
    if type(args.thread).__name__ != "_AsyncWriterThread":
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
        self.tb_dir, self.writer = Path(tb_dir), None
        # Scalars not yet handed over: (section, keys, values, step, wall time).
        self.pending: List[Tuple[str, Tuple[str, ...], List[float], int, float]] = []
        self.events: Dict[Tuple[str, Tuple[str, ...]], Event] = {}  # an event per tag set, reused
        self.handed_at = time.monotonic()
        if enabled:
            threading.excepthook = _quiet_event_writer
            with self._writing():
                self.writer = SummaryWriter(str(tb_dir), purge_step=purge_step)
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
            # refresh=False: drawn at the bar's next tick, not now (a redraw per log cost ~2 us per
            # step); a ready string, not set_postfix's keywords (which it sorts and formats: ~30 us)
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

    def hand_over(self) -> None:
        """Give the scalars logged so far to TensorBoard's writer (which appends them to the file
        in its thread). Called before each checkpoint, so a killed run's events reach at least
        as far as the checkpoint it resumes from."""
        if self.writer is not None and self.pending:
            with self._writing():
                writer = self.writer._get_file_writer()
                for section, keys, values, step, wall_time in self.pending:
                    event = self._event(section, keys)
                    for field, value in zip(event.summary.value, values, strict=True):
                        field.simple_value = value
                    writer.add_event(event, step, wall_time)  # serialized here: the event is reused
        self.pending, self.handed_at = [], time.monotonic()

    def _event(self, section: str, keys: Tuple[str, ...]) -> Event:
        """One event holding a value per key, its tags set once (building a Summary of fresh
        values per log interval, or calling add_scalar per value at ~60 us each, was most of the
        loop's own cost at the default log interval)."""
        event = self.events.get((section, keys))
        if event is None:
            tags = [f"{self.stage}/{section}/{k}" for k in keys]
            event = self.events[section, keys] = Event(summary=Summary(value=[Summary.Value(tag=t) for t in tags]))
        return event

    def images(self, section: str, batch: Dict[str, torch.Tensor], outputs: Dict[str, torch.Tensor], step: int) -> None:
        if self.writer is None:
            return
        self.hand_over()
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
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        # A stage that never produced a finite metric (NaN losses) has no best: leave it out.
        shown = {f"hparam/{k}": v for k, v in metrics.items() if v is not None and math.isfinite(v)}
        with self._writing():
            self.writer.add_hparams(clean, shown, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.hand_over()
            with self._writing():
                self.writer.close()
            self.writer = None

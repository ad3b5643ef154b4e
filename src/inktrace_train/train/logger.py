"""Where a run reports: TensorBoard under ``<run_dir>/tb``, the console and ``train.log``.

Every tag starts with the stage name (``structural/train/total``) so one
TensorBoard run shows both stages of a pipeline side by side.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from tqdm import tqdm

from inktrace_train.evaluation.visualize import prediction_grid
from inktrace_train.run.atomic import WriteError, cause
from inktrace_train.train.eventwriter import EventWriter

log = logging.getLogger("inktrace_train")

# Scalars wait as plain floats and go to the event writer process at most this often (and before
# every checkpoint, image and close), so the loop pickles one batch of floats now and then.
HAND_OVER_SECONDS = 1.0


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
        self.tb_dir, self.events = Path(tb_dir), None
        self.pending: List[Tuple[str, Tuple[str, ...], List[float], int, float]] = []  # not yet handed over
        self.handed_at = time.monotonic()
        if enabled:
            with self._writing():
                self.tb_dir.mkdir(parents=True, exist_ok=True)  # a path that cannot be one: refused at once
                self.events = EventWriter(str(tb_dir), purge_step)
        self.stage = stage
        self.show_progress = enabled and (sys.stderr.isatty() if progress is None else progress)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed TensorBoard write (disk full, directory gone, the writer process killed) stops
        the run with one line; the event writer process reports it at the next flush or close."""
        try:
            yield
        except OSError as e:
            events, self.events = self.events, None  # nothing more is written; close() does not fail twice
            if events is not None:
                events.abandon()
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
        if self.events is not None:  # kept as plain floats: the events are made at hand-over
            self.pending.append((section, tuple(values), [float(v) for v in values.values()], step, time.time()))
            if time.monotonic() - self.handed_at >= HAND_OVER_SECONDS:
                self.hand_over()

    def hand_over(self, wait: bool = False) -> None:
        """Give the scalars logged so far to the event writer; with ``wait``, until they are on
        disk (before each checkpoint, so a killed run's events reach at least as far as the
        checkpoint it resumes from)."""
        if self.events is None:
            return
        batch = [
            (f"{self.stage}/{section}/{key}", value, step, wall_time)
            for section, keys, values, step, wall_time in self.pending
            for key, value in zip(keys, values, strict=True)
        ]
        self.pending, self.handed_at = [], time.monotonic()
        with self._writing():
            if batch:
                self.events.send("scalars", batch)
            if wait:
                self.events.flush()

    def images(self, section: str, batch: Dict[str, torch.Tensor], outputs: Dict[str, torch.Tensor], step: int) -> None:
        if self.events is None:
            return
        self.hand_over()
        grid = prediction_grid(batch, outputs).numpy()
        with self._writing():
            self.events.send("image", f"{self.stage}/{section}/predictions", grid, step)

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
        if self.events is None:
            return
        self.hand_over()
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        # A stage that never produced a finite metric (NaN losses) has no best: leave it out.
        shown = {f"hparam/{k}": v for k, v in metrics.items() if v is not None and math.isfinite(v)}
        with self._writing():
            self.events.send("hparams", clean, shown)

    def close(self) -> None:
        if self.events is not None:
            self.hand_over()
            with self._writing():
                self.events.close()
            self.events = None

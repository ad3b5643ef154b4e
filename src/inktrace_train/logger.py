"""Where a run reports: TensorBoard under ``<run_dir>/tb``, the console and ``train.log``.

Every tag starts with the stage name (``structural/train/total``) so one
TensorBoard run shows both stages of a pipeline side by side.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Dict, Optional

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from inktrace_train.visualize import prediction_grid

log = logging.getLogger("inktrace_train")


class RunLogger:
    """TensorBoard scalars and images, a tqdm bar per epoch, one log line per epoch.

    Args:
        tb_dir: TensorBoard log directory.
        stage: tag prefix.
        purge_step: on resume, events at or after this step (replayed after a kill) are dropped.
        progress: show tqdm bars (default: only when stderr is a terminal).
    """

    def __init__(self, tb_dir: Path, stage: str, purge_step: Optional[int] = None,
                 progress: Optional[bool] = None):
        self.writer = SummaryWriter(str(tb_dir), purge_step=purge_step)
        self.stage = stage
        self.show_progress = sys.stderr.isatty() if progress is None else progress

    def progress(self, total: int, initial: int, desc: str) -> tqdm:
        return tqdm(total=total, initial=initial, desc=f"{self.stage} {desc}", leave=False,
                    dynamic_ncols=True, disable=not self.show_progress)

    def scalars(self, section: str, values: Dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{self.stage}/{section}/{key}", value, step)

    def images(self, section: str, batch: Dict[str, torch.Tensor], outputs: Dict[str, torch.Tensor],
               step: int) -> None:
        self.writer.add_image(f"{self.stage}/{section}/predictions", prediction_grid(batch, outputs), step)

    def epoch_summary(self, epoch: int, epochs: int, metric: float, is_best: bool,
                      metrics: Dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if not k.startswith("loss_"))
        log.info("%s epoch %d/%d: metric=%.4f%s | %s | val_loss=%.4f", self.stage, epoch, epochs, metric,
                 " (best)" if is_best else "", shown, metrics.get("loss_total", float("nan")))

    def hparams(self, params: Dict[str, object], metrics: Dict[str, float]) -> None:
        """The run's hyper-parameters with its final metrics, for TensorBoard's HParams tab
        (written into this stage's own log directory, not a new sub-run)."""
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        self.writer.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def close(self) -> None:
        self.writer.close()

"""The learning-rate schedule: linear warmup, then cosine decay, stepped once per optimizer step."""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, Optional, Tuple

import torch
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosine(LambdaLR):
    """Linear warmup to the peak lr, then cosine decay to ``final_lr_ratio`` of it.

    The factor depends only on the step count, so a resumed schedule (its ``last_epoch``
    restored) continues on the same curve. A resume that changes the length
    (``training.epochs``) continues the cosine from the lr reached there down to the new
    horizon, without a jump; that restart point is part of the state, so later resumes
    keep it.

    Args:
        total_steps: optimizer steps of the whole stage.
        warmup_steps: steps of linear warmup (capped at ``total_steps``).
        final_lr_ratio: the factor reached at the last step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, final_lr_ratio: float):
        self.total_steps = total_steps
        self.warmup_steps = min(warmup_steps, total_steps)
        self.final_lr_ratio = final_lr_ratio
        self.restart: Optional[Tuple[int, float]] = None  # (step, factor there) after a length change
        super().__init__(optimizer, self.factor)

    def _cosine(self, step: int, start: int, start_factor: float) -> float:
        progress = min(1.0, (step - start) / max(1, self.total_steps - start))
        return self.final_lr_ratio + (start_factor - self.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def factor(self, step: int) -> float:
        if self.restart is not None and step >= self.restart[0] >= self.warmup_steps:
            return self._cosine(step, *self.restart)
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self._cosine(step, self.warmup_steps, 1.0)

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        for constant in ("total_steps", "warmup_steps", "final_lr_ratio"):  # they come from the config
            state.pop(constant)
        state["horizon"] = self.total_steps  # lets a resume see that training.epochs changed
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        horizon = state.pop("horizon", self.total_steps)  # files of version 0.1 do not say: same length
        super().load_state_dict(state)
        if horizon != self.total_steps:
            self.restart = (self.last_epoch, self.get_last_lr()[0] / self.base_lrs[0])

    def fast_forward(self, step: int) -> None:
        """Jump to ``step`` (a converted older checkpoint that kept no schedule state)."""
        self.last_epoch = step - 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "step() before optimizer.step()"
            self.step()

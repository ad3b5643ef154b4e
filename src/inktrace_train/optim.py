"""Optimizer and learning-rate schedule."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                  final_lr_ratio: float, restart: Optional[Tuple[int, float]] = None) -> LambdaLR:
    """Linear warmup to the peak lr, then cosine decay to ``final_lr_ratio`` of it.

    Stepped once per optimizer step. The factor depends only on the step count, so a
    resumed scheduler (its ``last_epoch`` restored) continues on the same curve.

    Args:
        restart: (step, factor reached there) when a resumed run changed its length: from
            that step the cosine runs from that factor down to the new horizon, so the lr
            continues without a jump.
    """
    warmup_steps = min(warmup_steps, total_steps)

    def cosine(step: int, start: int, start_factor: float) -> float:
        progress = min(1.0, (step - start) / max(1, total_steps - start))
        return final_lr_ratio + (start_factor - final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def factor(step: int) -> float:
        if restart is not None and step >= restart[0] >= warmup_steps:
            return cosine(step, *restart)
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return cosine(step, warmup_steps, 1.0)

    return LambdaLR(optimizer, factor)

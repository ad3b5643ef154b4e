"""A moving average of the model's weights (``training.ema_decay``), as timm's ``ModelEma``.

After every optimizer step each weight of the average moves toward the model's by
``1 - decay_n``, where ``decay_n = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (as
TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``): the early, still random weights
are forgotten fast (0.82 of the way at the first update). Until ``decay_n`` reaches ``decay``
(0.99 after ~900 updates, 0.998 after ~4,500) the average spans about the last ``n / 9`` steps;
then about the last ``1 / (1 - decay)``. Validation, the best checkpoint, the next stage and every
inference tool use the average; the checkpoint keeps the trained weights too, so a resume
continues both exactly. The update is PyTorch's own EMA step
(``torch.optim.swa_utils.get_ema_multi_avg_fn``, one fused op over all the weights).
"""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


class WeightAverage:
    """The average of ``model``'s weights, in a copy of the model (same device, eval mode).

    Args:
        model: the plain module trained (not its DDP or compiled wrapper); its tensors are read
            in place, so the average follows whatever the optimizer wrote.
        decay: the average's weight of its old value per update, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.updates = 0
        # (average, model) tensors, bound once: load_state_dict copies into these in place
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values(), strict=True))
        self.averaged = [a for a, _ in pairs if a.is_floating_point()]
        self.current = [c for a, c in pairs if a.is_floating_point()]
        self.copied = [(a, c) for a, c in pairs if not a.is_floating_point()]  # counters: not averaged

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        get_ema_multi_avg_fn(decay)(self.averaged, self.current, None)
        for average, current in self.copied:
            average.copy_(current)

    def state_dict(self) -> Dict[str, Any]:
        return {"weights": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """The average as saved; the decay stays the configured one (it may change on resume)."""
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])

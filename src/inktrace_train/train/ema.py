"""A moving average of the model's weights (``training.ema_decay``), as timm's ``ModelEma``.

After every optimizer step each weight of the average moves toward the model's by
``1 - decay_n``, where ``decay_n = min(decay, (1 + n) / (10 + n))`` after ``n`` updates: the
early, still random weights are forgotten fast (0.18 of the way at the first update), and the
average settles to ``decay`` after a few hundred steps. Its horizon is about ``1 / (1 - decay)``
optimizer steps. Validation, the best checkpoint, the next stage and every inference tool then use
the average; the checkpoint keeps the trained weights too, so a resume continues both exactly.
"""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn


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
        # (average, model) tensor pairs, bound once: load_state_dict copies into these in place
        self.pairs = list(zip(self.module.state_dict().values(), model.state_dict().values(), strict=True))

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        step = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in self.pairs:
            if average.is_floating_point():
                average.lerp_(current, step)
            else:  # integer buffers (counters) are not averaged
                average.copy_(current)

    def state_dict(self) -> Dict[str, Any]:
        return {"weights": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """The average as saved; the decay stays the configured one (it may change on resume)."""
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])

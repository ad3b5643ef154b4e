"""The trainer's state, each part owned by its object, as torchtitan's ``Stateful`` components.

A part provides ``state_dict()`` and ``load_state_dict(state)``; the checkpoint gathers them
(:meth:`Trainer.checkpoint <inktrace_train.train.trainer.Trainer.checkpoint>`) under the names of
format version 1, and a resume hands each its own back. The optimizer, the schedule and the
gradient scaler are PyTorch's (and :class:`~inktrace_train.train.optim.WarmupCosine`); the loop's
counters and the random generators are here. The sampler's position is the loop's counters (the
epoch and the micro-batches done in it) and the logger's step is the optimizer step, so neither
keeps state of its own.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Protocol

import numpy as np
import torch


class Stateful(Protocol):
    def state_dict(self) -> Dict[str, Any]: ...

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    """The loop's own state: counters and the best metric. Its entries are top-level fields of
    a checkpoint (``epoch``, ``step_in_epoch``, ``global_step``, ``best_metric``)."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # micro-batches done in the current epoch
    global_step: int = 0  # optimizer steps done
    best_metric: Optional[float] = None  # the one source of "is this epoch the best"

    def improves(self, metric: float) -> bool:
        """Higher is better; NaN never is."""
        return not math.isnan(metric) and (self.best_metric is None or metric > self.best_metric)

    def state_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for name in asdict(self):
            setattr(self, name, state[name])


class Generators:
    """Python's, numpy's, torch's and CUDA's random generators, as types ``weights_only`` loads."""

    def state_dict(self) -> Dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "python": list(random.getstate()[1]),
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
            "numpy_pos": int(np_state[2]),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        random.setstate((3, tuple(state["python"]), None))
        np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

"""The uniform average of the weights of several checkpoints of one architecture.

Fine-tunings that start from one model stay close enough to it that the mean of their weights
is itself a good model, and often better than each of them on data none was trained on
(Wortsman et al. 2022, "Model soups"); it traces at the cost of one model, unlike an ensemble.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from inktrace_train.config.schema import flatten
from inktrace_train.errors import ToolError

Weights = Dict[str, torch.Tensor]


def _model_config(config: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return flatten((config or {}).get("model") or {}, "model")


def check_compatible(named: Sequence[Tuple[str, Weights, Optional[Dict[str, Any]]]]) -> None:
    """Raise ToolError, naming the file and the key, unless every checkpoint has the first one's
    model config and tensors (names, shapes, and equal values where they are not floating point)."""
    first_name, first, first_config = named[0]
    model = _model_config(first_config)
    for name, state, config in named[1:]:
        other = _model_config(config)
        for key in sorted(set(model) | set(other)):
            if model.get(key) != other.get(key):
                raise ToolError(
                    f"{name}: {key}={other.get(key)!r} where {first_name} has {model.get(key)!r}: "
                    "only checkpoints of one architecture can be averaged"
                )
        for key in sorted(set(first) ^ set(state)):
            where = name if key in state else first_name
            raise ToolError(f"{name}: tensor {key} is only in {where}: only one architecture can be averaged")
        for key, value in first.items():
            if state[key].shape != value.shape:
                raise ToolError(
                    f"{name}: {key} has shape {tuple(state[key].shape)} where {first_name} has {tuple(value.shape)}"
                )
            if not value.is_floating_point() and not torch.equal(state[key], value):
                raise ToolError(f"{name}: {key} (not a weight) differs from {first_name}'s: cannot be averaged")


def average(states: List[Weights]) -> Weights:
    """The element-wise mean of each floating-point tensor (in float64, stored in its own dtype);
    other tensors are the first state's (check_compatible found them equal)."""
    return {
        key: torch.stack([s[key].double() for s in states]).mean(0).to(value.dtype)
        if value.is_floating_point()
        else value
        for key, value in states[0].items()
    }


__all__ = ["average", "check_compatible"]

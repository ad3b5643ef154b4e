"""Reading each glyph in several views: the canvas and its one-pixel shifts, their maps averaged.

The model's encoder halves the resolution with stride-2 convolutions, so it is not quite
shift-equivariant: the same ink one pixel to the right falls on the other phase of each stride
and gives slightly different maps. Reading the canvas as it is and shifted by one pixel right,
down and both (the two phases of a stride on each axis), shifting each view's maps back and
averaging them (probabilities as probabilities, the tangent as its (cos 2θ, sin 2θ) vector)
removes that phase noise before tracing. Chosen on the validation split and fonts
(docs/evaluation.md, "Four views of each glyph"): stroke F1 +0.005 to +0.008 on the clean, scan and brush
sets, and on the validation fonts count error −0.026 and exact-count share +0.018, at 95 %;
1-px shifts only (4-px shifts buy nothing, and more views than four buy no more).

Training's validation scores and its TensorBoard grid read one view: they compare the epochs of
one run, and every epoch pays for them.

It wraps any map function (a checkpoint's model or an exported ONNX file), one call per view of
the batch, so it needs no torch and holds no more of the model's memory than one view.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

SHIFTS = ((0, 0), (1, 0), (0, 1), (1, 1))  # (dx, dy) px: each axis's two phases of a stride-2 stage
VIEWS = (1, len(SHIFTS))  # the canvas alone; the canvas and its three 1-px shifts
DEFAULT_VIEWS = len(SHIFTS)

Maps = Dict[str, np.ndarray]


def shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``a`` (..., H, W) moved by (dx, dy) px, the cells it leaves filled with zeros (not wrapped)."""
    out = np.zeros_like(a)
    h, w = a.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def check_views(views: object) -> int:
    """``views`` if it is one of :data:`VIEWS`; else a ValueError naming it and what is allowed."""
    if type(views) is not int or views not in VIEWS:
        raise ValueError(f"views={views!r}: must be one of {', '.join(map(str, VIEWS))}")
    return views


class ShiftViews:
    """A map function that reads each canvas in ``views`` views and returns their mean maps.

    Args:
        maps: ``(B, 1, S, S)`` float32 ink -> maps by name, each ``(B, C, S, S)``.
        views: 1 (the canvas alone: ``maps`` itself) or 4 (see :data:`SHIFTS`).
    """

    def __init__(self, maps: Callable[[np.ndarray], Maps], views: int = DEFAULT_VIEWS) -> None:
        self.maps, self.shifts = maps, SHIFTS[: check_views(views)]

    def __call__(self, ink: np.ndarray) -> Maps:
        if len(self.shifts) == 1:
            return self.maps(ink)
        total: Maps = {}
        seen = np.zeros(ink.shape[-2:], np.float32)  # views that saw each cell (fewer at the far edges)
        for dx, dy in self.shifts:  # one batch a view: memory stays that of one view's batch
            seen += shifted(np.ones_like(seen), -dx, -dy)
            for name, m in self.maps(shifted(ink, dx, dy)).items():
                back = shifted(m, -dx, -dy)
                total[name] = total[name] + back if name in total else back
        return {name: m / seen for name, m in total.items()}  # float32 maps stay float32


__all__ = ["DEFAULT_VIEWS", "SHIFTS", "VIEWS", "ShiftViews", "check_views", "shifted"]

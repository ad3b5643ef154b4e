"""Pages of glyphs at known places (tests, benchmarks, the tracing guide's picture): strokes in
unit coordinates drawn with a round pen onto white paper, with their true boxes and strokes in
page pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

PEN_FRACTION = 3.0 / 109.0  # KanjiVG's stroke width in its 109-unit viewBox
_SHIFT = 4  # cv2 fixed-point bits: strokes are drawn at 1/16 px precision


@dataclass
class PageGlyph:
    """A drawn glyph: ``box`` (x0, y0, x1, y1) of its ink in pixel edges, ``strokes`` (N, 2) x, y
    page pixels (pixel centres at i + 0.5), ``pen`` the pen width in px."""

    box: Tuple[float, float, float, float]
    strokes: List[np.ndarray]
    pen: float


def draw_glyph(page: np.ndarray, strokes: Sequence[np.ndarray], x: float, y: float, size: float) -> PageGlyph:
    """Draw unit-coordinate strokes so that their ink's top-left corner lands at (x, y) and the
    longer side of their extent is ``size`` px (uint8 page, 255 paper, in place)."""
    pts = np.concatenate(list(strokes))
    lo, extent = pts.min(0), float((pts.max(0) - pts.min(0)).max()) or 1.0
    pen = max(1.0, size * PEN_FRACTION)
    scale = (size - pen) / extent
    offset = np.array([x, y]) + pen / 2 - lo * scale
    placed = [np.asarray(s, np.float64) * scale + offset for s in strokes]
    for s in placed:
        # cv2 draws pixel (i, j) centred on integer coordinates; ours are centred at i + 0.5.
        fixed = np.round((s - 0.5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(page, [fixed], False, 0, max(1, round(pen)), cv2.LINE_AA, _SHIFT)
    allpts = np.concatenate(placed)
    box = (*(allpts.min(0) - pen / 2), *(allpts.max(0) + pen / 2))
    return PageGlyph(box=tuple(float(v) for v in box), strokes=placed, pen=pen)


def blank_page(height: int, width: int) -> np.ndarray:
    return np.full((height, width), 255, np.uint8)

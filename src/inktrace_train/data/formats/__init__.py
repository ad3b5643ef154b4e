"""Readers of stroke files: SVG, InkML and NDJSON, one module each, one shape of output.

A reader takes a file and its name (its path relative to ``data.path``) and yields, in file
order, :class:`RawGlyph` s (strokes in the file's own units) and :class:`Skip` s (a part it
could not use, with the reason). A file that cannot be read at all raises ``ValueError`` (or
``OSError``); the caller records it as one skip. Cleaning (finite, not degenerate, not too
large) and the fit to the unit square happen once, in :mod:`..strokes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

MAX_FILE_BYTES = 64 * 2**20  # an XML file larger than this is skipped unread (memory stays bounded)
MAX_LINE_BYTES = 2**20  # an NDJSON line longer than this is skipped (the file itself may be any size)
MAX_GLYPH_POINTS = 200_000  # a glyph with more points (after flattening curves) is skipped
MAX_STROKES = 2_000  # a glyph with more strokes is skipped
# A line file's last line that does not parse and has no line end: the file was cut short (a copy
# still being written). Its other lines are read, but the file counts as unreadable, so the glyphs
# cached from its last whole version are kept instead (data/strokes.py).
CUT_SHORT = "file cut short"


@dataclass
class RawGlyph:
    """One glyph as read.

    Attributes:
        key: what splits it and must be unique: ``file``, ``file#group``, a line's ``key`` or ``file:line``.
        where: where it is, for messages (``a/b.inkml#2``, ``q.ndjson:17``).
        label: the text it shows, when the file says (InkML truth, NDJSON label, KanjiVG codepoint).
        strokes: float64 (N, 2) arrays in the file's units, y down; may be empty or non-finite.
        canvas: the page (x, y, w, h) to fit to the unit square, or None for the glyph's bounding box.
    """

    key: str
    where: str
    label: str
    strokes: List[np.ndarray]
    canvas: Optional[Tuple[float, float, float, float]] = None


@dataclass
class Skip:
    """Input left out: ``where`` (file, ``file:line``, ``file#group``), a short ``reason``
    category (counted in the start-up summary) and ``detail`` (shown by ``check``)."""

    where: str
    reason: str
    detail: str = ""


def too_large(n_points: int, n_strokes: int) -> bool:
    return n_points > MAX_GLYPH_POINTS or n_strokes > MAX_STROKES

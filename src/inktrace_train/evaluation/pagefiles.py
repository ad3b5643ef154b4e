"""A traced page written out in the image's own pixel coordinates: SVG (a ``<g>`` per glyph) and
the strokes drawn over the input image (``predict --overlay``). No torch."""

from __future__ import annotations

import math
from typing import List

import cv2
import numpy as np

from inktrace_train.evaluation.tracer import Page
from inktrace_train.evaluation.tracing import Stroke

DEFAULT_WIDTH = 1.0  # px: the pen width drawn for strokes of a model without a width head


def _paths(strokes: List[Stroke], indent: str) -> List[str]:
    lines = []
    for st in strokes:
        d = "M " + " L ".join(f"{x:.2f} {y:.2f}" for x, y in st.points)
        width = st.width if math.isfinite(st.width) else DEFAULT_WIDTH
        lines.append(f'{indent}<path d="{d}" stroke-width="{width:.2f}"/>')
    return lines


def page_svg(page: Page) -> str:
    """An SVG document, viewBox ``0 0 W H`` of the input image, one ``<g>`` per glyph (its box in
    ``data-box``) holding one round-capped path per stroke with its pen width."""
    body = []
    for i, glyph in enumerate(page.glyphs):
        box = " ".join(str(v) for v in glyph.box)
        body.append(f'  <g id="glyph-{i}" data-box="{box}">')
        body += _paths(glyph.strokes, "    ")
        body.append("  </g>")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {page.width} {page.height}" '
        f'width="{page.width}" height="{page.height}" fill="none" stroke="black" '
        'stroke-linecap="round" stroke-linejoin="round">\n' + "\n".join(body) + ("\n" if body else "") + "</svg>\n"
    )


def overlay(grey: np.ndarray, page: Page) -> np.ndarray:
    """The input image (uint8 grey), faded, with each glyph's box in grey and its strokes in
    colours over it: uint8 BGR, the image's size."""
    out = cv2.cvtColor((grey // 2 + 128).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    line = max(1, round(max(page.width, page.height) / 800))  # visible on a page, not a blot on a glyph
    for glyph in page.glyphs:
        x0, y0, x1, y1 = glyph.box
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (170, 170, 170), line)
        for k, stroke in enumerate(glyph.strokes):
            hue = np.uint8([[[(k * 47) % 180, 230, 220]]])
            colour = tuple(int(c) for c in cv2.cvtColor(hue, cv2.COLOR_HSV2BGR)[0, 0])
            pts = np.round((stroke.points - 0.5) * 16).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], False, colour, line + 1, cv2.LINE_AA, 4)
    return out

"""Brush ink: glyphs whose strokes have a filled outline as well as a centerline.

A pen glyph is drawn by sweeping a disk along each centerline; a brush glyph's ink is the
union of its strokes' filled outlines (hooks, tapered ends, swelling) and its centerlines
(medians) give every other target. The half-width at each centerline point is measured in
its own stroke's outline, so where strokes cross it stays that stroke's width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import cv2
import numpy as np

from inktrace_train.data.pen import Hairlines

SUPERSAMPLE = 4  # outlines are filled at 4x and box-filtered: coverage in steps of 1/16 (OpenCV fills
# boundary sub-pixels inclusively: a stroke comes out up to 1/4 px wider than its outline)
SHIFT = 4  # fixed-point fractional bits handed to cv2.fillPoly
MIN_HALF_WIDTH = 0.5  # px; a median point that strays out of its outline still gets a pen


@dataclass(frozen=True)
class BrushGlyph:
    """A glyph of a brush source, in unit coordinates (y down).

    Attributes:
        medians: one float32 (N, 2) centerline per stroke, in writing order.
        outlines: one float32 (K, 2) closed polygon per stroke (the same order).
    """

    medians: List[np.ndarray]
    outlines: List[np.ndarray]


@dataclass(frozen=True)
class Outlines:
    """The pen of an augmented brush glyph: each stroke's outline polygon, pixel coordinates, and
    any hairlines joining the strokes. The renderers take it where a pen glyph has its
    :class:`~.pen.Pen`."""

    polygons: List[np.ndarray]
    hairlines: Hairlines = field(default_factory=Hairlines)


def fixed_point(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Pixel coordinates -> cv2.fillPoly's fixed-point supersampled coordinates (a pixel centre
    of the supersampled grid is an integer there)."""
    scaled = (np.asarray(points, np.float64) - origin) * SUPERSAMPLE - 0.5
    return np.rint(scaled * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def fill(polygons: List[np.ndarray], size: int) -> np.ndarray:
    """Anti-aliased coverage (H, W) float32 of the union of the polygons.

    One cv2.fillPoly call per polygon: a single call fills its polygons together by the even-odd
    rule, so where two strokes cross the crossing would be left blank.
    """
    big = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.uint8)
    for p in polygons:
        if len(p) >= 3:
            cv2.fillPoly(big, [fixed_point(p, np.zeros(2))], 255, lineType=cv2.LINE_8, shift=SHIFT)
    return downsample(big, size)


def downsample(big: np.ndarray, size: int) -> np.ndarray:
    """A SUPERSAMPLE x uint8 mask (255 ink) -> coverage (size, size) float32: the box filter."""
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def half_widths(polygons: List[np.ndarray], samples: np.ndarray, stroke_id: np.ndarray) -> np.ndarray:
    """The half-width of each centerline sample: its distance to the edge of its stroke's outline.

    Each stroke's outline is filled at SUPERSAMPLE x in a box around it and distance-transformed;
    the samples read it at their own position.

    Args:
        polygons: one outline per stroke (pixel coordinates).
        samples: (M, 2) centerline samples; stroke_id: (M,) their stroke.

    Returns:
        (M,) float64 half-widths, pixels, at least MIN_HALF_WIDTH.
    """
    out = np.full(len(samples), MIN_HALF_WIDTH)
    for s, polygon in enumerate(polygons):
        mine = np.flatnonzero(stroke_id == s)
        if len(mine) == 0 or len(polygon) < 3:
            continue
        lo = np.floor(np.minimum(polygon.min(0), samples[mine].min(0))) - 2
        hi = np.ceil(np.maximum(polygon.max(0), samples[mine].max(0))) + 2
        w, h = ((hi - lo) * SUPERSAMPLE).astype(int)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [fixed_point(polygon, lo)], 1, lineType=cv2.LINE_8, shift=SHIFT)
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_5)
        cell = np.clip(np.floor((samples[mine] - lo) * SUPERSAMPLE).astype(int), 0, [w - 1, h - 1])
        out[mine] = (dist[cell[:, 1], cell[:, 0]] - 0.5) / SUPERSAMPLE  # centre to the edge, not the next centre
    return np.maximum(out, MIN_HALF_WIDTH)


# How a file of brush glyphs holds them (hanzi's cache, font ink): every median's and outline's
# points concatenated, with offsets per polyline and per glyph, and one name per glyph.
ARRAYS = ("median_points", "median_offsets", "outline_points", "outline_offsets", "glyph_offsets", "names")


def pack(glyphs: Sequence[BrushGlyph], names: Sequence[str]) -> Dict[str, np.ndarray]:
    """Brush glyphs (and a name each) as the :data:`ARRAYS` of a file."""

    def offsets(sizes):
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    medians = [m for g in glyphs for m in g.medians]
    outlines = [o for g in glyphs for o in g.outlines]
    return {
        "median_points": np.concatenate(medians).astype(np.float32),
        "median_offsets": offsets([len(m) for m in medians]),
        "outline_points": np.concatenate(outlines).astype(np.float32),
        "outline_offsets": offsets([len(o) for o in outlines]),
        "glyph_offsets": offsets([len(g.medians) for g in glyphs]),
        "names": np.array(names, dtype=str),
    }


def unpack(arrays: Dict[str, np.ndarray], g: int) -> BrushGlyph:
    """Glyph ``g`` of packed :data:`ARRAYS` (views into them, not copies)."""
    first, last = int(arrays["glyph_offsets"][g]), int(arrays["glyph_offsets"][g + 1])
    mo, oo = arrays["median_offsets"], arrays["outline_offsets"]
    return BrushGlyph(
        medians=[arrays["median_points"][mo[s] : mo[s + 1]] for s in range(first, last)],
        outlines=[arrays["outline_points"][oo[s] : oo[s + 1]] for s in range(first, last)],
    )


__all__ = ["ARRAYS", "BrushGlyph", "Outlines", "downsample", "fill", "fixed_point", "half_widths", "pack", "unpack"]

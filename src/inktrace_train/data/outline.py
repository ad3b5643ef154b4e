"""Pen strokes drawn as filled outlines (``data.outline_ink``): the brush path of :mod:`.brush`
for any source. The outline follows the centerline at the pen's half width on either side (so a
pressure profile or a broad nib gives the swelling, tapering brush look), its corners are mitred
(sharp, as in a font's outline, where a swept disk rounds them) and its ends are round or flat.

Each stroke becomes convex pieces: one trapezoid per centerline segment (perpendicular to it
at both ends), a mitre (or, past MITER_LIMIT, a bevel) on the outer side of each bend, and a disk
at each round end. Every piece is filled on its own at the brush's 4x supersampling, so the
pieces add up to their union (one fill call for all of them would leave their overlaps blank by
the even-odd rule), then box-filtered to the canvas like brush ink, but without its extra 1/4 px
(INCLUSIVE): the ``width`` target of a sample is its pen half width, the distance from the
centerline to either side of the outline, and the ink is that wide.
"""

from __future__ import annotations

from typing import List

import cv2
import numpy as np

from inktrace_train.data.brush import SHIFT, SUPERSAMPLE, downsample, fixed_point
from inktrace_train.data.centerline import densify, sample_tangents
from inktrace_train.data.pen import Pen

VERTEX_STEP = 1.0  # px; the longest outline edge along a stroke (an augmented stroke's points are this close)
MITER_LIMIT = 2.0  # a mitre reaches at most this many half widths from the centerline; sharper bends are bevelled
CAP_POINTS = 16  # vertices of the polygon that draws a round end
MIN_GAP = 0.5 / SUPERSAMPLE  # px; a bend whose outer gap is narrower than half a sub-pixel needs no join
INCLUSIVE = 0.5 / SUPERSAMPLE  # px; OpenCV fills one more sub-pixel row and column than a polygon covers (the
ORIGIN = np.full(2, INCLUSIVE)  # brush's 1/4 px): pieces are drawn this much thinner and shifted back by as much


def fill(strokes: List[np.ndarray], pen: Pen, size: int) -> np.ndarray:
    """Coverage (size, size) float32 of the strokes' filled outlines.

    Args:
        strokes: S float (N, 2) polylines (N >= 1), pixel coordinates: their own vertices, so a
            corner of the polyline is a corner of the outline.
        pen: their pen (:meth:`~.pen.Pen.sample_half_widths` at each vertex; ``flat_caps``).
    """
    points, sizes = _distinct(strokes)
    sid = np.repeat(np.arange(len(sizes)), sizes)
    last = np.cumsum(sizes) - 1
    first = last - sizes + 1
    step = np.r_[0.0, np.linalg.norm(np.diff(points, axis=0), axis=1)]
    cum = np.cumsum(step)
    arc = cum - cum[first][sid]  # the jump from a stroke's end to the next start drops out here
    half_width = pen.sample_half_widths(sid, arc, arc[last], sample_tangents(points, sid))
    half_width = np.maximum(half_width - INCLUSIVE, 0.0)
    if pen.flat_caps:  # a flat end is an edge too: INCLUSIVE in from it
        long = sizes > 1
        ends, inner = np.r_[first[long], last[long]], np.r_[first[long] + 1, last[long] - 1]
        points[ends] += INCLUSIVE * _unit(points[inner] - points[ends])
    quads, disks = pieces(points, half_width, sizes, pen.flat_caps)
    big = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.uint8)
    for group in (quads, disks):  # converted to fixed point all at once; filled one by one
        fixed = fixed_point(group.reshape(-1, 2), ORIGIN).reshape(group.shape)
        for polygon in fixed:
            cv2.fillConvexPoly(big, polygon, 255, lineType=cv2.LINE_8, shift=SHIFT)
    return downsample(big, size)


def _distinct(strokes: List[np.ndarray]):
    """All strokes' points, densified to VERTEX_STEP (so the outline follows the pen's width
    along the stroke) without repeated consecutive points (they have no direction),
    concatenated, and the count per stroke."""
    points, sizes = densify([np.asarray(s, np.float64).reshape(-1, 2) for s in strokes], VERTEX_STEP)
    kept = np.ones(len(points), bool)
    kept[1:] = np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-6
    kept[np.cumsum(sizes) - sizes] = True  # every stroke keeps its first point
    sid = np.repeat(np.arange(len(sizes)), sizes)
    return points[kept], np.bincount(sid[kept], minlength=len(sizes))


def pieces(points: np.ndarray, half_width: np.ndarray, sizes: np.ndarray, flat: bool):
    """The convex polygons whose union is the strokes' outline (see the module).

    Args:
        points: (M, 2) the strokes' vertices, concatenated, no repeated consecutive point.
        half_width: (M,) the pen's half width at each.
        sizes: (S,) vertices per stroke.
        flat: flat ends (no disk there) instead of round ones.

    Returns:
        (quadrilaterals (P, 4, 2): a trapezoid per segment, a mitre or bevel per bend;
        disks (D, CAP_POINTS, 2) at round ends).
    """
    last = np.cumsum(sizes) - 1
    first = last - sizes + 1
    capped = np.ones(len(sizes), bool) if not flat else sizes == 1
    ends = np.r_[first[capped], last[capped]]
    disks = points[ends, None] + half_width[ends, None, None] * _CIRCLE
    d = _unit(np.diff(points, axis=0))  # segment i runs from vertex i to i + 1
    n = np.stack([-d[:, 1], d[:, 0]], 1)  # its left normal
    inside = np.ones(len(d), bool)
    inside[last[:-1]] = False  # no segment from a stroke's end to the next stroke's start
    i = np.flatnonzero(inside)
    a, b, ha, hb = points[i], points[i + 1], half_width[i, None], half_width[i + 1, None]
    trapezoids = np.stack([a + ha * n[i], b + hb * n[i], b - hb * n[i], a - ha * n[i]], 1)
    interior = np.ones(len(points), bool)
    interior[first] = interior[last] = False
    v = np.flatnonzero(interior)
    joins = _joins(points[v], half_width[v], d[v - 1], d[v], n[v - 1], n[v])
    return np.concatenate([trapezoids, joins]), disks


def _joins(p, hw, d0, d1, n0, n1) -> np.ndarray:
    """(J, 4, 2) mitre (or bevel) pieces on the outer side of interior vertices that bend."""
    cross = d0[:, 0] * d1[:, 1] - d0[:, 1] * d1[:, 0]
    bend = np.flatnonzero(hw * np.abs(cross) >= MIN_GAP)
    p, hw, n0, n1 = p[bend], hw[bend, None], n0[bend], n1[bend]
    side = -np.sign(cross[bend])[:, None]  # the outer side, away from the turn
    a, b = p + side * hw * n0, p + side * hw * n1
    bisector = n0 + n1
    norm2 = np.maximum((bisector * bisector).sum(1, keepdims=True), 1e-12)
    mitre = p + side * hw * 2.0 * bisector / norm2  # reaches hw / cos(half the bend)
    bevel = 4.0 / norm2[:, 0] > MITER_LIMIT**2
    tip = np.where(bevel[:, None], (a + b) / 2, mitre)
    return np.stack([p, a, tip, b], 1).reshape(-1, 4, 2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


_ANGLES = np.linspace(0, 2 * np.pi, CAP_POINTS, endpoint=False)
_CIRCLE = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)  # the unit polygon of a round end


__all__ = ["MITER_LIMIT", "fill", "pieces"]

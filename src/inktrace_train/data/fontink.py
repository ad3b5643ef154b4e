"""Font ink: real fonts' glyphs as training ink, with stroke labels.

A font draws a character's ink but not its strokes. ``scripts/font_ink.py`` labels train-split
characters of fonts, with a trained model's traces of the glyphs it traces right (as many strokes
as the character has, and all of the ink traced) or with the character's own strokes fitted onto
the ink (:mod:`inktrace_train.evaluation.fontfit`); this module turns each labelled glyph into
a :class:`~.brush.BrushGlyph`: the strokes are its medians, and each stroke's outline is the
font's own ink around it (:func:`stroke_outlines`), so the renderer draws the font's ink, and every
target from the strokes, as for hanzi-writer-data's brush glyphs. Bolder copies of a glyph grow
every stroke's outline (:data:`GROW`): heavy ink whose strokes merge, with the centerlines of the
regular weight.

The file (``data.font_ink``) is one ``.npz`` of the brush arrays (:data:`.brush.ARRAYS`; names
``font/char/grow``) with a checksum (:mod:`.npzcache`). Its glyphs join the training split only,
as one more source: the validation set, and so the best checkpoint's metric, stay the source's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from inktrace_train.data import brush, npzcache
from inktrace_train.data.brush import BrushGlyph
from inktrace_train.data.glyphs import DataError

log = logging.getLogger(__name__)

FORMAT = {"format": "inktrace font ink", "version": 1}  # the key every font-ink file carries
TUBE = 1.4  # a stroke's outline: the ink within this many of its half widths of its centerline
HOLE_PX = 2.0  # an outline may not enclose paper larger than this (px^2): it would be filled in
STRAY = 0.01  # share of the glyph's ink a stroke's outline may leave in pieces apart from it
GROW = (0, 3, 6)  # px of the font image each stroke's outline is grown by: one copy per value
SMOOTH_STEP = 1.0  # px between a centerline's resampled points
SMOOTH_WINDOW = 5  # points in its moving average (the traced pixel path's steps smoothed out)


def smooth(points: np.ndarray) -> np.ndarray:
    """A traced pixel path resampled every SMOOTH_STEP and smoothed (its ends kept where they are)."""
    points = np.asarray(points, np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if arc[-1] < 2 * SMOOTH_STEP:
        return points
    t = np.linspace(0.0, arc[-1], max(3, int(arc[-1] / SMOOTH_STEP) + 1))
    even = np.stack([np.interp(t, arc, points[:, 0]), np.interp(t, arc, points[:, 1])], axis=1)
    if len(even) <= SMOOTH_WINDOW:
        return even
    half = SMOOTH_WINDOW // 2
    padded = np.concatenate([even[:1].repeat(half, 0), even, even[-1:].repeat(half, 0)])
    kernel = np.ones(SMOOTH_WINDOW) / SMOOTH_WINDOW
    out = np.stack([np.convolve(padded[:, i], kernel, "valid") for i in range(2)], axis=1)
    out[0], out[-1] = even[0], even[-1]
    return out


def stroke_outlines(ink: np.ndarray, medians: Sequence[np.ndarray], grow: int = 0) -> Optional[List[np.ndarray]]:
    """One outline polygon per stroke that together redraw the glyph's ink, or None.

    A stroke's outline is the connected ink within TUBE of its half widths (the ink's own
    distance to paper along the centerline, its median) of its centerline, with the ink that no
    stroke's tube reaches (a serif, a blob) given to the nearest stroke, grown by ``grow`` px.
    Strokes overlap where they cross, as brush strokes do. None when an outline would enclose
    paper (a filled polygon has no holes) or leave more than STRAY of the ink in pieces apart.

    Args:
        ink: (H, W) bool, the glyph's ink.
        medians: each stroke's centerline, float (N, 2) x, y pixel coordinates (centres at i + 0.5).
        grow: px to grow every outline by (a bolder weight of the font).

    Returns:
        float32 (K, 2) polygons in the same coordinates, one per median.
    """
    ink = np.asarray(ink, bool)
    depth = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 5)
    regions, distances = [], []
    for median in medians:
        line = np.ones(ink.shape, np.uint8)
        cv2.polylines(line, [np.round(np.asarray(median) - 0.5).astype(np.int32).reshape(-1, 1, 2)], False, 0, 1)
        distance = cv2.distanceTransform(line, cv2.DIST_L2, 5)
        on = (line == 0) & ink
        half_width = max(float(np.median(depth[on])) if on.any() else 1.0, 1.0)
        tube = (distance <= TUBE * half_width) & ink
        _, labels = cv2.connectedComponents(tube.astype(np.uint8), connectivity=8)
        touched = np.unique(labels[on])
        regions.append(np.isin(labels, touched[touched > 0]))
        distances.append(distance)
    unreached = ink & ~np.any(regions, axis=0)
    nearest = np.argmin(np.stack(distances), axis=0)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)) if grow > 0 else None
    polygons = []
    for k, region in enumerate(regions):
        region = (region | (unreached & (nearest == k))).astype(np.uint8)
        if kernel is not None:
            region = cv2.dilate(region, kernel)
        contours, hierarchy = cv2.findContours(region, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        if not contours:
            return None
        parents = hierarchy[0][:, 3]
        if any(p >= 0 and cv2.contourArea(c) > HOLE_PX for c, p in zip(contours, parents, strict=True)):
            return None
        outer = sorted((c for c, p in zip(contours, parents, strict=True) if p < 0), key=cv2.contourArea)
        if sum(cv2.contourArea(c) for c in outer[:-1]) > STRAY * ink.sum():
            return None
        polygon = cv2.approxPolyDP(outer[-1], 0.4, True).reshape(-1, 2).astype(np.float32) + 0.5
        if len(polygon) < 3:
            return None
        polygons.append(polygon)
    return polygons


def to_unit(medians: Sequence[np.ndarray], outlines: Sequence[np.ndarray]) -> BrushGlyph:
    """Pixel medians and outlines -> a brush glyph in unit coordinates: the outlines' bounding box
    fitted to the unit square, aspect kept, centred (as a stroke file's glyph)."""
    points = np.concatenate(outlines)
    lo, hi = points.min(axis=0), points.max(axis=0)
    side = float((hi - lo).max())
    origin = lo - (side - (hi - lo)) / 2.0

    def unit(p: np.ndarray) -> np.ndarray:
        return ((np.asarray(p, np.float64) - origin) / side).astype(np.float32)

    return BrushGlyph([unit(m) for m in medians], [unit(o) for o in outlines])


def save(path: str | Path, glyphs: Sequence[BrushGlyph], names: Sequence[str]) -> None:
    """Write a font-ink file (atomically, with its checksum)."""
    if not glyphs:
        raise DataError(f"{path}: no glyph to write (no font glyph was traced right)")
    npzcache.write(Path(path), brush.pack(glyphs, names), brush.ARRAYS, FORMAT)


def load(path: str | Path) -> Dict[str, np.ndarray]:
    """The arrays of a font-ink file, verified; a DataError naming the file otherwise."""
    where = Path(path).expanduser()
    if not where.is_file():
        raise DataError(
            f"data.font_ink={path}: no such file (make one: python scripts/font_ink.py MODEL --fonts-dir DIR)"
        )
    key = (str(where.resolve()), "font ink")
    if key not in npzcache.MEMO:
        try:
            arrays = npzcache.read(where, brush.ARRAYS, FORMAT)
        except Exception as e:  # a zip, key or checksum error: the file cannot be trusted
            raise DataError(f"data.font_ink={path}: not a usable font-ink file ({e})") from None
        for a in arrays.values():
            a.flags.writeable = False
        npzcache.MEMO[key] = arrays
    return npzcache.MEMO[key]


class FontInkGlyphs:
    """The glyphs of a font-ink file (every one: they are train-split characters already)."""

    def __init__(self, path: str | Path) -> None:
        self._a = load(path)

    def __len__(self) -> int:
        return len(self._a["names"])

    def glyph(self, index: int, rng: Optional[np.random.Generator] = None) -> BrushGlyph:
        """Medians and outlines of glyph ``index`` (read-only views, unit coordinates); rng unused."""
        return brush.unpack(self._a, index)

    def name(self, index: int) -> str:
        return str(self._a["names"][index])


__all__ = ["FORMAT", "GROW", "FontInkGlyphs", "load", "save", "smooth", "stroke_outlines", "to_unit"]

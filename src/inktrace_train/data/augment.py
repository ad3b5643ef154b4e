"""Random geometric and pen augmentation: unit-coordinate glyph -> pixel strokes."""

from __future__ import annotations

import math
from typing import List, Tuple

import cv2
import numpy as np

from inktrace_train.data.brush import BrushGlyph, Outlines
from inktrace_train.data.centerline import densify
from inktrace_train.data.pen import Pen, PenStyle, chance

RESAMPLE_STEP = 1.0  # px; strokes are densified to this spacing so the wobble can bend them
WOBBLE_WAVES = 2  # sinusoids per axis and stroke
WAVELENGTH = (0.3, 0.9)  # wobble wavelength range, as a fraction of the canvas: low frequency
BORDER = 1.0  # px kept free between the pen's edge and the canvas border when fitting
# An angular glyph's strokes are reduced to the fewest straight pieces that keep within this many
# pixels of the stroke (Douglas-Peucker): a hook's curve becomes a corner, as a printed font draws it.
ANGULAR_TOLERANCE = 1.0


def _arc_lengths(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Arc length from each point's stroke start, for all strokes at once."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return cum - cum[first]


class Augmenter:
    """Random affine, per-stroke wobble and pen.

    The argument names equal the DataConfig fields on purpose (the pen's are :class:`PenStyle`'s).

    Args:
        img_size: canvas side, pixels.
        rotation_deg: rotation uniform in [-rotation_deg, rotation_deg].
        scale_min, scale_max: the unit square maps to this fraction of the canvas.
        shear: horizontal shear factor uniform in [-shear, shear].
        shift: offset of the glyph centre, a fraction of the canvas, per axis.
        wobble: amplitude (px) of the low-frequency displacement of each stroke.
        angular: share of pen glyphs whose strokes are straightened (ANGULAR_TOLERANCE).
        pen: draws each glyph's pen (width, pressure, nib, ends, outline ink, hairlines).
    """

    def __init__(
        self,
        img_size: int,
        rotation_deg: float,
        scale_min: float,
        scale_max: float,
        shear: float,
        shift: float,
        wobble: float,
        angular: float,
        pen: PenStyle,
    ) -> None:
        self.img_size = int(img_size)
        self.rotation = math.radians(rotation_deg)
        self.scale = (float(scale_min), float(scale_max))
        self.shear = float(shear)
        self.shift = float(shift)
        self.wobble = float(wobble)
        self.angular = float(angular)
        self.pen = pen

    def __call__(
        self, glyph: List[np.ndarray] | BrushGlyph, rng: np.random.Generator
    ) -> Tuple[List[np.ndarray], Pen | Outlines]:
        """Augment one glyph.

        Args:
            glyph: strokes in unit coordinates, or a :class:`BrushGlyph` (never modified).
            rng: the sample's generator; the only source of randomness.

        Returns:
            (strokes, pen): float32 (N, 2) polylines in pixel coordinates and the pen: a
            :class:`Pen`, or for a brush glyph its outlines, moved with the same affine and wobble
            as the centerlines. The pen's style and hairlines are drawn after the geometry, so
            turning them on leaves every glyph's shape as it was.
        """
        size = self.img_size
        brush = isinstance(glyph, BrushGlyph)
        lines = glyph.medians if brush else glyph
        half_widths = None if brush else self.pen.half_widths(len(lines), rng)
        pts = np.concatenate(lines).astype(np.float64)
        ink = np.concatenate(glyph.outlines).astype(np.float64) if brush else pts  # what must stay inside
        lo, hi = ink.min(axis=0), ink.max(axis=0)
        matrix = self._matrix(rng) * rng.uniform(*self.scale) * size
        # Centre the glyph's bounding box: a glyph drawn off-centre in its source
        # box (punctuation, small kana) is still fully inside the canvas.
        pts = (pts - (lo + hi) / 2.0) @ matrix.T
        ink = (ink - (lo + hi) / 2.0) @ matrix.T if brush else pts
        margin = BORDER if brush else half_widths.max() + BORDER
        extent = np.abs(ink).max(axis=0)
        fit = max(min(1.0, float(np.min((size / 2.0 - margin) / np.maximum(extent, 1e-9)))), 0.0)
        pts *= fit  # shrink only when the transformed glyph would not fit
        ink = ink * fit if brush else pts
        room = np.maximum(size / 2.0 - margin - np.abs(ink).max(axis=0), 0.0)
        offset = np.clip(rng.uniform(-self.shift, self.shift, size=2) * size, -room, room)
        pts += size / 2.0 + offset
        sizes = np.array([len(s) for s in lines])
        if not brush and chance(self.angular, rng):
            pts, sizes = _straightened(pts, sizes)
        dense, dsizes, shift = self._wobble(pts, sizes, rng)
        strokes = [s.astype(np.float32) for s in np.split(dense + shift, np.cumsum(dsizes)[:-1])]
        if not brush:
            return strokes, self.pen.pen(half_widths, strokes, rng)
        ink += size / 2.0 + offset
        polygons = _carry(ink, [len(o) for o in glyph.outlines], dense, dsizes, shift)
        return strokes, Outlines(polygons, self.pen.draw_hairlines(strokes, rng))

    def _matrix(self, rng: np.random.Generator) -> np.ndarray:
        """Rotation times shear (unit scale)."""
        angle = rng.uniform(-self.rotation, self.rotation)
        c, s = math.cos(angle), math.sin(angle)
        k = rng.uniform(-self.shear, self.shear)
        return np.array([[c, -s], [s, c]]) @ np.array([[1.0, k], [0.0, 1.0]])

    def _wobble(self, pts: np.ndarray, sizes: np.ndarray, rng: np.random.Generator):
        """Displace each stroke by a few low-frequency sinusoids of its arc length.

        Args:
            pts: all strokes' points, concatenated, pixel coordinates.
            sizes: points per stroke.

        Returns:
            (dense (M, 2), dense sizes (S,), displacement (M, 2)): the strokes densified to
            RESAMPLE_STEP and how far each of their points moves.
        """
        strokes = np.split(pts, np.cumsum(sizes)[:-1])
        dense, dsizes = densify(strokes, RESAMPLE_STEP)
        n = len(sizes)
        shift = np.zeros_like(dense)
        if self.wobble > 0:
            shape = (n, 2, WOBBLE_WAVES)  # stroke, axis, wave
            amp = self.wobble / WOBBLE_WAVES * rng.uniform(0.5, 1.0, size=shape)
            freq = 2 * np.pi / (self.img_size * rng.uniform(*WAVELENGTH, size=shape))
            phase = rng.uniform(0, 2 * np.pi, size=shape)
            sid = np.repeat(np.arange(n), dsizes)
            arc = _arc_lengths(dense, dsizes)[:, None, None]
            shift = np.sum(amp[sid] * np.sin(freq[sid] * arc + phase[sid]), axis=2)
        return dense, dsizes, shift


def _straightened(pts: np.ndarray, sizes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Each stroke (``sizes`` points of ``pts`` each) as the fewest straight pieces within
    ANGULAR_TOLERANCE px of it (its ends kept)."""
    pieces = [
        cv2.approxPolyDP(s.astype(np.float32).reshape(-1, 1, 2), ANGULAR_TOLERANCE, False).reshape(-1, 2)
        for s in np.split(pts, np.cumsum(sizes)[:-1])
    ]
    return np.concatenate(pieces).astype(np.float64), np.array([len(p) for p in pieces])


def _carry(points: np.ndarray, sizes: List[int], dense: np.ndarray, dsizes: np.ndarray, shift: np.ndarray):
    """Move each stroke's outline with its centerline: every outline point takes the
    displacement of the nearest point of its own stroke's (densified) centerline.

    Returns:
        One float32 (K, 2) polygon per stroke.
    """
    out = []
    for poly, line, move in zip(
        np.split(points, np.cumsum(sizes)[:-1]),
        np.split(dense, np.cumsum(dsizes)[:-1]),
        np.split(shift, np.cumsum(dsizes)[:-1]),
        strict=True,
    ):
        d2 = ((poly[:, None, :] - line[None, :, :]) ** 2).sum(-1)
        out.append((poly + move[d2.argmin(1)]).astype(np.float32))
    return out

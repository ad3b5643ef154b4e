"""Ink swept by a pen whose width changes along its strokes (pressure, a broad nib) or whose
strokes end flat, and the ink of hairlines: the CPU half (the device renderer does the same
sums in torch, :mod:`.device_sweep`).

The nearest-centerline coverage of :mod:`.render` gives each pixel the width of its nearest
stroke; where a thin stroke ends inside a wide one, that would cut a hole in the wide one. Here
the ink is the union of every centerline sample's own piece of pen instead: sample j (half width
h_j, unit tangent t_j) inks the segment of its centerline that is nearer to it than to its
neighbours (half the sample spacing each way, not past the stroke's ends), as a capsule of
radius h_j, box-filtered like the disk pen::

    coverage(c) = max_j clip(h_j + 0.5 - distance(c, segment_j), 0, 1)

A flat (butt) end cuts the capsules of the samples within h_j + 1 of the end by the half-plane
through the end, across the end's tangent, with the same one-pixel box filter:
``clip(0.5 - (c - end) . t_end, 0, 1)``. Closed strokes have no ends to cut.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from inktrace_train.data.centerline import SAMPLE_STEP, resample, sample_tangents
from inktrace_train.data.pen import Hairlines

REACH = 0.5 + SAMPLE_STEP / 2 + 0.5  # px beyond the half width: box filter, half a sample spacing,
# and a pixel centre's half cell (so the window of cells around a sample's own cell is enough)
CUT_REACH = 1.0  # px beyond the half width: samples this near a flat end are cut by its half-plane


def window(half_width_max: float) -> int:
    """Cells each side of a sample's own cell that its capsule can ink."""
    return math.ceil(half_width_max + REACH)


def segments(sid: np.ndarray, arc: np.ndarray, stroke_len: np.ndarray):
    """Each sample's piece of its centerline, as (lo, hi) along its tangent from the sample: half the
    stroke's sample spacing each way, never past the stroke's ends."""
    count = np.bincount(sid, minlength=len(stroke_len))
    spacing = stroke_len / np.maximum(count - 1, 1)
    half = spacing[sid] / 2
    return -np.minimum(half, arc), np.minimum(half, stroke_len[sid] - arc)


def sweep(
    samples: np.ndarray,
    tangents: np.ndarray,
    sid: np.ndarray,
    arc: np.ndarray,
    stroke_len: np.ndarray,
    half_width: np.ndarray,
    size: int,
    cut: Optional[np.ndarray] = None,
    intensity: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Coverage (size, size) float32 of the union of the samples' capsules (see the module).

    In float32, as on the device: (M, (2r + 1)^2) values, about 50 k for a KanjiVG glyph.

    Args:
        samples, tangents, sid, arc: the resampled centerlines (:func:`.centerline.resample`).
        stroke_len: (S,) arc length of each stroke.
        half_width: (M,) half width at each sample.
        cut: (S,) bool, strokes whose two ends are cut flat; None for round ends everywhere.
        intensity: (M,) darkness of each sample's ink (hairlines); None for 1.
    """
    if len(samples) == 0:
        return np.zeros((size, size), np.float32)
    r = window(float(half_width.max()))
    lo, hi = (v.astype(np.float32)[:, None] for v in segments(sid, arc, stroke_len))
    cell = np.floor(samples)
    off = np.arange(-r, r + 1)
    ox, oy = (v.ravel() for v in np.meshgrid(off, off))  # (K,) cells around a sample's own
    frac = (samples - cell).astype(np.float32)
    dx = (ox + 0.5).astype(np.float32) - frac[:, :1]  # (M, K) from the sample to the cell centres
    dy = (oy + 0.5).astype(np.float32) - frac[:, 1:]
    tx, ty = (v.astype(np.float32) for v in (tangents[:, :1], tangents[:, 1:]))
    along = dx * tx + dy * ty
    beyond = along - np.clip(along, lo, hi)
    perp = dy * tx - dx * ty
    cover = np.clip(half_width.astype(np.float32)[:, None] + 0.5 - np.sqrt(beyond * beyond + perp * perp), 0, 1)
    if cut is not None and cut.any():
        _cut_flat_ends(cover, samples, tangents, sid, arc, stroke_len, half_width, cut, dx, dy)
    if intensity is not None:
        cover *= intensity.astype(np.float32)[:, None]
    cx, cy = cell[:, :1].astype(np.int64) + ox, cell[:, 1:].astype(np.int64) + oy
    pixel = np.where((cx >= 0) & (cx < size) & (cy >= 0) & (cy < size), cy * size + cx, size * size)
    canvas = np.zeros(size * size + 1, np.float32)  # the last element takes what falls off the canvas
    np.maximum.at(canvas, pixel.ravel(), cover.ravel())
    return canvas[:-1].reshape(size, size)


def _cut_flat_ends(cover, samples, tangents, sid, arc, stroke_len, half_width, cut, dx, dy) -> None:
    """Multiply the rows of ``cover`` of samples near a flat end by the end's half-plane (in place)."""
    count = np.bincount(sid, minlength=len(stroke_len))
    last = np.cumsum(count) - 1
    first = last - count + 1
    for end, sign, near in (
        (first, -1.0, arc < half_width + CUT_REACH),
        (last, 1.0, stroke_len[sid] - arc < half_width + CUT_REACH),
    ):
        rows = np.flatnonzero(near & cut[sid])
        e = end[sid[rows]]
        ex, ey = (samples[e] - samples[rows]).astype(np.float32).T  # the end, from the sample
        tx, ty = (sign * tangents[e]).astype(np.float32).T  # pointing out of the stroke
        beyond = (dx[rows] - ex[:, None]) * tx[:, None] + (dy[rows] - ey[:, None]) * ty[:, None]
        cover[rows] *= np.clip(0.5 - beyond, 0.0, 1.0)


def hairline_samples(hairlines: Hairlines):
    """The hairlines resampled like centerlines: (samples, tangents, hairline id, arc, length (H,))."""
    samples, hid, arc = resample([np.asarray(line, np.float64) for line in hairlines.lines])
    length = np.zeros(len(hairlines.lines))
    np.maximum.at(length, hid, arc)
    return samples, sample_tangents(samples, hid), hid, arc, length


def hairline_ink(hairlines: Hairlines, size: int) -> np.ndarray:
    """Coverage (size, size) float32 of the hairlines: swept round pens, each at its intensity."""
    samples, tangents, hid, arc, length = hairline_samples(hairlines)
    half_width = np.asarray(hairlines.half_width, np.float64)[hid]
    intensity = np.asarray(hairlines.intensity, np.float64)[hid]
    return sweep(samples, tangents, hid, arc, length, half_width, size, intensity=intensity)


__all__ = ["CUT_REACH", "REACH", "hairline_ink", "hairline_samples", "segments", "sweep", "window"]

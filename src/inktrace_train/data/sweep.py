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
    lo, hi = segments(sid, arc, stroke_len)
    cell = np.floor(samples).astype(np.int64)
    off = np.arange(-r, r + 1)
    cx = (cell[:, 0, None, None] + off[None, None, :]).reshape(len(samples), 1, -1)  # (M, 1, 2r+1)
    cy = (cell[:, 1, None, None] + off[None, :, None]).reshape(len(samples), -1, 1)  # (M, 2r+1, 1)
    cx, cy = np.broadcast_arrays(cx, cy)
    cx, cy = cx.reshape(len(samples), -1), cy.reshape(len(samples), -1)  # (M, K) cells
    dx, dy = cx + 0.5 - samples[:, :1], cy + 0.5 - samples[:, 1:]
    tx, ty = tangents[:, :1], tangents[:, 1:]
    along = dx * tx + dy * ty
    beyond = along - np.clip(along, lo[:, None], hi[:, None])
    perp = dy * tx - dx * ty
    cover = np.clip(half_width[:, None] + 0.5 - np.sqrt(beyond * beyond + perp * perp), 0.0, 1.0)
    if cut is not None and cut.any():
        cover *= _flat_ends(samples, tangents, sid, arc, stroke_len, half_width, cut, cx + 0.5, cy + 0.5)
    if intensity is not None:
        cover *= intensity[:, None]
    inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
    canvas = np.zeros(size * size)
    np.maximum.at(canvas, (cy * size + cx)[inside], cover[inside])
    return canvas.reshape(size, size).astype(np.float32)


def _flat_ends(samples, tangents, sid, arc, stroke_len, half_width, cut, px, py) -> np.ndarray:
    """(M, K) factor of the half-planes that cut the flat ends, 1 where no end is near."""
    count = np.bincount(sid, minlength=len(stroke_len))
    last = np.cumsum(count) - 1
    first = last - count + 1
    factor = np.ones_like(px)
    for end, sign, near in (
        (first, -1.0, arc < half_width + CUT_REACH),
        (last, 1.0, stroke_len[sid] - arc < half_width + CUT_REACH),
    ):
        e = end[sid]
        ex, ey = samples[e, :1], samples[e, 1:]
        tx, ty = sign * tangents[e, :1], sign * tangents[e, 1:]  # pointing out of the stroke
        half_plane = np.clip(0.5 - ((px - ex) * tx + (py - ey) * ty), 0.0, 1.0)
        factor = np.where((near & cut[sid])[:, None], factor * half_plane, factor)
    return factor


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

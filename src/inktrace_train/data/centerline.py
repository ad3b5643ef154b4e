"""Stroke centerlines sampled evenly, with their directions: what every target is drawn from.

Both renderers start here (the CPU one in the worker; the device one's worker half hands the
samples to the training device), so they draw from the very same points.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

SAMPLE_STEP = 0.35  # px between centerline samples: several per pixel, so the skeleton has no gaps
CLOSED_GAP = 0.75  # px; a stroke whose ends are closer than this (and is long) is closed


def densify(strokes: List[np.ndarray], step: float) -> Tuple[np.ndarray, np.ndarray]:
    """Insert points so no segment is longer than ``step``; keeps every original point.

    All strokes at once: every point emits itself plus the points that split
    the segment to its successor; a stroke's last point has no successor.

    Args:
        strokes: S float (N, 2) polylines, N >= 1.
        step: the largest wanted segment length.

    Returns:
        (points (M, 2) float64, sizes (S,) points per stroke).
    """
    pts = np.concatenate(strokes).astype(np.float64)
    sizes = np.array([len(s) for s in strokes])
    last = np.cumsum(sizes) - 1
    seg = np.zeros_like(pts)
    seg[:-1] = pts[1:] - pts[:-1]
    seg[last] = 0.0  # no segment from a stroke's end into the next stroke
    counts = np.maximum(1, np.ceil(np.linalg.norm(seg, axis=1) / step)).astype(np.int64)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    t = (k / np.repeat(counts, counts))[:, None]
    out = np.repeat(pts, counts, axis=0) + t * np.repeat(seg, counts, axis=0)
    return out, np.add.reduceat(counts, np.cumsum(sizes) - sizes)


def resample(strokes: List[np.ndarray], step: float = SAMPLE_STEP) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evenly spaced points along every stroke, ends included.

    All strokes go through one searchsorted: arc length runs on over the
    concatenation, with a unit gap for each jump between strokes so that a
    stroke's last sample lands on its own end and never on the next stroke.

    Args:
        strokes: S float (N_s, 2) polylines (N_s >= 1).
        step: the largest spacing between samples.

    Returns:
        (samples (M, 2) float64, stroke id (M,) int64, arc length from the
        stroke start (M,) float64). Each stroke's samples are contiguous.
    """
    pts = np.concatenate(strokes).astype(np.float64)
    sizes = np.array([len(s) for s in strokes])
    seg_len = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    jump = np.cumsum(sizes)[:-1] - 1  # segment index from a stroke's end to the next start
    seg_len[jump] = 1.0
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    last = first + sizes - 1
    start_s, length = cum[first], cum[last] - cum[first]
    counts = np.ceil(length / step).astype(np.int64) + 1  # samples per stroke
    stroke_id = np.repeat(np.arange(len(strokes)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    denom = np.maximum(counts - 1, 1)[stroke_id]
    arc = length[stroke_id] * k / denom
    s = start_s[stroke_id] + arc
    seg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, max(len(pts) - 2, 0))
    if len(pts) == 1:  # a lone point: nothing to interpolate
        return np.repeat(pts, len(s), axis=0), stroke_id, arc
    span = cum[seg + 1] - cum[seg]
    t = np.divide(s - cum[seg], span, out=np.zeros_like(s), where=span > 0)[:, None]
    samples = pts[seg] + t * (pts[seg + 1] - pts[seg])
    return samples, stroke_id, arc


def sample_tangents(samples: np.ndarray, stroke_id: np.ndarray) -> np.ndarray:
    """Unit direction at each sample: central difference within its stroke.

    Returns:
        (M, 2) unit vectors; (1, 0) where a stroke has no length.
    """
    m = len(samples)
    idx = np.arange(m)
    nxt = np.minimum(idx + 1, m - 1)
    prv = np.maximum(idx - 1, 0)
    nxt = np.where(stroke_id[nxt] == stroke_id, nxt, idx)  # do not reach into the next stroke
    prv = np.where(stroke_id[prv] == stroke_id, prv, idx)
    d = samples[nxt] - samples[prv]
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return np.where(n > 1e-9, d / np.maximum(n, 1e-9), np.array([1.0, 0.0]))


def closed_strokes(starts: np.ndarray, ends: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(S,) bool: strokes whose ends meet (closer than CLOSED_GAP) and that are long: loops, with no ends."""
    return (np.linalg.norm(ends - starts, axis=1) < CLOSED_GAP) & (length > 4 * CLOSED_GAP)

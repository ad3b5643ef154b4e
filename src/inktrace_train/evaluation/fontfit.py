"""A character's known strokes fitted onto a font's ink: stroke labels for a font glyph.

A font draws a character's ink; KanjiVG or hanzi-writer-data know its strokes, drawn by another
hand. :func:`fit` bends the known strokes onto the glyph's skeleton: first one affine map of the
whole character (from the two bounding boxes), then a smooth displacement over the character
(a GRID x GRID field) and one small affine map per stroke, by gradient descent on two distances:
each stroke point to the nearest skeleton pixel, and each skeleton pixel to the nearest stroke
point. :func:`fitted_strokes` keeps a fit only when it is a labelling: every stroke lies on the
ink and along its middle (ends that overshoot the ink trimmed), and the strokes trace the glyph
as the tracer must (ink recall at least INK_RECALL). Unlike a model's traces, the labels need no
model that already reads the glyph right: a cursive join or a wedge the model misreads is
labelled by the character's own strokes.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inktrace_train.evaluation.skeleton import clean, thin
from inktrace_train.evaluation.strokemetrics import ink_counts, resample

GRID = 8  # control points a side of the smooth displacement field over the character
STEP_PX = 0.6  # px of the skeleton's image between a known stroke's fitted points (at its first scale)
STEPS = (60, 200)  # gradient steps: the whole character's affine map, then everything
LOCAL_SCALE = 0.3  # a stroke's own affine map: its linear part's reach, of the character's scale
SMOOTHNESS = 3.0  # weight of the displacement field's roughness (squared neighbour differences)
LOCAL_WEIGHT = 0.02  # weight of the strokes' own maps' size
OFF_INK_PX = 1.0  # a fitted stroke's point may lie at most this far off the ink (ends trimmed first)
CENTRED_PX = 0.75  # a fitted stroke's median distance to the skeleton may be at most this
INK_RECALL = 0.98  # share of the glyph's skeleton a labelling's strokes must trace (as ink_counts counts)


def _sample(field: torch.Tensor, xy: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A (H, W) map's bilinear values at (N, 2) pixel coordinates (centres at i + 0.5)."""
    h, w = size
    grid = torch.stack([xy[:, 0] / w * 2 - 1, xy[:, 1] / h * 2 - 1], 1)
    return F.grid_sample(field[None, None], grid[None, None], align_corners=False, padding_mode="border")[0, 0, 0]


def fit(skeleton: np.ndarray, strokes: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Known strokes (unit coordinates, any scale) bent onto a one-pixel skeleton.

    Args:
        skeleton: (H, W) bool, the glyph's thinned ink (some of it).
        strokes: each stroke's polyline, (N, 2) x, y, N >= 2, not all at one point.

    Returns:
        Each stroke fitted, float (M, 2) x, y pixel coordinates of the skeleton's image.
    """
    size = skeleton.shape
    target = torch.tensor(np.argwhere(skeleton)[:, ::-1] + 0.5, dtype=torch.float32)
    distance = torch.tensor(cv2.distanceTransform((~skeleton).astype(np.uint8), cv2.DIST_L2, 5))
    lo_s, hi_s = target.min(0).values, target.max(0).values
    raw = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes]
    lo, hi = np.concatenate(raw).min(0), np.concatenate(raw).max(0)
    px = float((hi_s - lo_s).max()) / (float((hi - lo).max()) or 1.0)  # skeleton px per stroke unit
    points = [resample(s * px, STEP_PX) / px for s in raw]
    ids = torch.tensor(np.concatenate([np.full(len(p), k) for k, p in enumerate(points)]))
    known = torch.tensor(np.concatenate(points), dtype=torch.float32)
    lo_t, hi_t = known.min(0).values, known.max(0).values
    span_t, span_s = hi_t - lo_t, hi_s - lo_s
    # A stroke-thin character (一, 丨) spans one axis only: that axis's scale serves both.
    scale = torch.where(span_t > 0.05 * span_t.max(), span_s / span_t.clamp(min=1e-6), span_s.max() / span_t.max())
    linear = torch.diag(scale).requires_grad_(True)
    shift = ((lo_s + hi_s) / 2 - (lo_t + hi_t) / 2 * scale).requires_grad_(True)
    field = torch.zeros(1, 2, GRID, GRID, requires_grad=True)
    local = torch.zeros(len(points), 2, 3, requires_grad=True)
    where = ((known - lo_t) / span_t.clamp(min=1e-6) * 2 - 1).clamp(-1, 1)[None, None]
    centre = torch.stack([known[ids == k].mean(0) for k in range(len(points))])
    offset = (known - centre[ids])[:, :, None]
    reach_px = LOCAL_SCALE * float(scale.mean())

    def warp() -> torch.Tensor:
        bend = F.grid_sample(field, where, align_corners=True)[0, :, 0].T
        own = (local[ids, :, :2] @ offset)[:, :, 0] * reach_px + local[ids, :, 2]
        return known @ linear.T + shift + bend + own

    for phase, steps in enumerate(STEPS):
        groups = [{"params": [linear], "lr": 0.3}, {"params": [shift], "lr": 0.2}]
        if phase:
            groups += [{"params": [field], "lr": 0.15}, {"params": [local], "lr": 0.05}]
        opt = torch.optim.Adam(groups)
        for _ in range(steps):
            fitted = warp()
            rough = ((field[..., 1:, :] - field[..., :-1, :]) ** 2).mean() + (
                (field[..., 1:] - field[..., :-1]) ** 2
            ).mean()
            loss = (
                _sample(distance, fitted, size).mean()
                + torch.cdist(target, fitted).min(1).values.mean()
                + SMOOTHNESS * rough
                + LOCAL_WEIGHT * (local**2).sum((1, 2)).mean()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        fitted = warp().numpy().astype(np.float64)
    return [fitted[ids.numpy() == k] for k in range(len(points))]


def _values(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A float32 map's bilinear values at (N, 2) pixel coordinates (centres at i + 0.5)."""
    xy = (np.asarray(points, np.float32) - 0.5).reshape(-1, 1, 2)
    return cv2.remap(image, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()


def traces_all(canvas: np.ndarray, strokes: Sequence[np.ndarray]) -> bool:
    """Whether strokes (canvas pixels) trace a glyph canvas's ink: ink recall at least INK_RECALL."""
    counts = ink_counts(canvas, strokes)
    return counts["ink_total"] > 0 and counts["ink_traced"] >= INK_RECALL * counts["ink_total"]


def fitted_strokes(canvas: np.ndarray, strokes: Sequence[np.ndarray]) -> Optional[List[np.ndarray]]:
    """A glyph canvas's (float ink in [0, 1]) known strokes fitted onto it, in canvas pixels, or
    None when the fit is no labelling (a stroke off the ink or off its middle, ink left untraced)
    or cannot be made (no ink; a known stroke of fewer than two points; all strokes at one point)."""
    ink = np.asarray(canvas) >= 0.5
    skeleton = clean(thin(ink))
    known = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes]
    if skeleton.sum() < 3 or not known or min(len(s) for s in known) < 2:
        return None
    if np.ptp(np.concatenate(known), axis=0).max() == 0:
        return None
    off_ink = cv2.distanceTransform((~ink).astype(np.uint8), cv2.DIST_L2, 5)
    off_skeleton = cv2.distanceTransform((~skeleton).astype(np.uint8), cv2.DIST_L2, 5)
    kept = []
    for stroke in fit(skeleton, known):
        on = np.nonzero(_values(off_ink, stroke) <= 0.5)[0]
        if len(on) < 2:
            return None
        stroke = stroke[on[0] : on[-1] + 1]  # an end past the ink: the known stroke overshoots
        if _values(off_ink, stroke).max() > OFF_INK_PX or np.median(_values(off_skeleton, stroke)) > CENTRED_PX:
            return None
        kept.append(stroke)
    return kept if traces_all(canvas, kept) else None


__all__ = ["INK_RECALL", "fit", "fitted_strokes", "traces_all"]

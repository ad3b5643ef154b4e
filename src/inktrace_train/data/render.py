"""Polylines to training targets, on the CPU with numpy and OpenCV.

Pixel (row i, col j) covers [j, j+1) x [i, i+1) of the stroke coordinates, so its
centre is (j + .5, i + .5). Every target is computed from all strokes (never from
a masked image). The work per sample is a handful of whole-image OpenCV calls and
vectorised numpy over the ~0.35 px centerline samples; there is no per-pixel or
per-sample Python loop.

Ink is not rasterised by a line drawer: OpenCV's thick lines come in steps of
two pixels of thickness (half a pixel at 4x supersampling) and add about 0.4 px
of anti-aliasing fringe, so their ink would disagree with the width target.
Coverage is computed from the same nearest-centerline distance that gives the
width and offset targets instead.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import cv2
import numpy as np

from inktrace_train.data import brush, outline
from inktrace_train.data.brush import Outlines
from inktrace_train.data.centerline import closed_strokes, resample, sample_tangents
from inktrace_train.data.pen import Pen
from inktrace_train.data.sweep import hairline_ink, segments, sweep

TARGET_CHANNELS = {"ink": 1, "skeleton": 1, "keypoints": 2, "tangent": 2, "width": 1, "offset": 2}

JUNCTION_RADIUS = 2  # px; KanjiVG strokes stop 1-3 units short of the stroke they touch
INK_THRESHOLD = 0.5  # coverage at which a pixel counts as ink for width / offset


SPOT_RADIUS = 3  # px; beyond it a sigma-1 spot is below SPOT_FLOOR (or nearly, at the corners)
SPOT_FLOOR = 1e-3  # spot values under this are zeroed: sparse maps, exact zeros far away


def _spot_kernel() -> np.ndarray:
    d = np.arange(-SPOT_RADIUS, SPOT_RADIUS + 1)
    k = np.exp(-0.5 * (d[None, :] ** 2 + d[:, None] ** 2))
    k[k < SPOT_FLOOR] = 0.0
    return k


_SPOT = _spot_kernel()


def _gaussian_spots(points: np.ndarray, size: int) -> np.ndarray:
    """Max over Gaussian spots (sigma 1 px) centred on the pixels holding ``points``.

    Each spot is a (2r+1)^2 kernel scattered with np.maximum.at into a canvas
    padded by r, so spots at the border need no clipping.

    Args:
        points: (K, 2) x, y pixel coordinates; points off the canvas are dropped.
        size: canvas side.

    Returns:
        float32 (size, size), 1 exactly at the pixels holding a point.
    """
    r = SPOT_RADIUS
    cells = np.floor(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    cells = cells[np.all((cells >= 0) & (cells < size), axis=1)]
    padded = size + 2 * r
    canvas = np.zeros(padded * padded)
    if len(cells):
        window = (np.arange(-r, r + 1)[:, None] * padded + np.arange(-r, r + 1)[None, :]).ravel()
        base = (cells[:, 1] + r) * padded + cells[:, 0] + r
        values = np.broadcast_to(_SPOT.ravel(), (len(cells), _SPOT.size))
        np.maximum.at(canvas, (base[:, None] + window[None, :]).ravel(), values.ravel())
    return canvas.reshape(padded, padded)[r:-r, r:-r].astype(np.float32)


REFINE = 12  # samples (4.2 px) either side: where the walk did not settle, the nearest foot among these


def _foot_of_perpendicular(centre, start, samples, tangents, sid, arc, stroke_len, iterations=2):
    """Nearest centerline point to each of ``centre``, starting from sample ``start``.

    Each iteration moves to the sample of the same stroke that lies the
    tangential distance away (samples are evenly spaced along a stroke, so this
    follows the curve, not its tangent); the foot is then the point of that sample's
    piece of centerline (half a spacing either way, never past the stroke's ends)
    nearest the query. Off the outer side of a sharp corner the walk jumps between the
    corner's two legs: where it has not settled (one more jump would move it, the stroke's
    ends not counting), and only there (about 4 % of queries at the default pens), the
    nearest foot of the REFINE samples either side is taken. The device renderer does the same.

    Args:
        centre: (K, 2) query points.
        start: (K,) sample index to start from (a sample near the answer).
        samples, tangents, sid, arc: the resampled centerlines (see resample).
        stroke_len: (S,) arc length of each stroke.

    Returns:
        ((K, 2) points on the centerlines, (K,) the sample each lies beside).
    """
    counts = np.bincount(sid, minlength=len(stroke_len))
    last = np.cumsum(counts) - 1
    first = last - counts + 1
    j, s = start, sid[start]
    step = np.maximum((stroke_len / np.maximum(counts - 1, 1))[s], 1e-9)
    lo, hi = segments(sid, arc, stroke_len)  # each sample's piece of centerline, along its tangent
    cx, cy = centre[:, 0], centre[:, 1]
    sx, sy, tx, ty = samples[:, 0], samples[:, 1], tangents[:, 0], tangents[:, 1]

    def along(j, x, y):  # components instead of (K, 2) sums: reductions over a length-2 axis are slow
        return (x - sx[j]) * tx[j] + (y - sy[j]) * ty[j]

    def foot(j, a):
        a = np.clip(a, lo[j], hi[j])
        return sx[j] + a * tx[j], sy[j] + a * ty[j]

    for _ in range(iterations):
        j = np.clip(j + np.rint(along(j, cx, cy) / step).astype(np.int64), first[s], last[s])
    a = along(j, cx, cy)
    fx, fy = foot(j, a)
    k = np.flatnonzero(np.clip(j + np.rint(a / step).astype(np.int64), first[s], last[s]) != j)  # still moving
    if len(k):
        window = np.clip(j[k, None] + np.arange(-REFINE, REFINE + 1), first[s[k], None], last[s[k], None])
        x, y = cx[k, None], cy[k, None]
        wx, wy = foot(window, along(window, x, y))
        pick = ((wx - x) ** 2 + (wy - y) ** 2).argmin(1)  # the first of equals, as torch's argmin
        j = j.copy()
        j[k] = window[np.arange(len(k)), pick]
        fx[k], fy[k] = wx[np.arange(len(k)), pick], wy[np.arange(len(k)), pick]
    return np.stack([fx, fy], axis=1), j


class Renderer:
    """Render strokes (pixel coordinates) into the TARGET_CHANNELS arrays.

    Args:
        img_size: side of the square output, pixels.
    """

    on_device = False  # draws every target here, in the data-loader worker

    def __init__(self, img_size: int) -> None:
        self.img_size = int(img_size)
        # OpenCV's thread pool only costs time on 64x64 images, and a pool that
        # exists when data-loader workers fork makes cv2 calls that touch it in
        # the children (setNumThreads) deadlock. Single-threaded from the start.
        cv2.setNumThreads(1)
        r = JUNCTION_RADIUS
        self._disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    def __call__(self, strokes: List[np.ndarray], pen: np.ndarray | Pen | Outlines) -> Dict[str, np.ndarray]:
        """Render one glyph.

        Args:
            strokes: S float (N, 2) polylines in pixel coordinates.
            pen: the glyph's :class:`~.pen.Pen` (or just its (S,) half pen width per stroke, pixels:
                a round pen of constant width); or, for brush ink, each stroke's outline
                (:class:`~.brush.Outlines`): the ink is then their filled union and the width at
                each centerline point is measured in its stroke's outline. A pen's or outlines'
                hairlines are added to the ink only.

        Returns:
            float32 (C, H, W) arrays keyed and sized as TARGET_CHANNELS.
        """
        size = self.img_size
        strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
        keep = [i for i, s in enumerate(strokes) if len(s) > 0]
        if not keep:
            return {k: np.zeros((c, size, size), np.float32) for k, c in TARGET_CHANNELS.items()}
        strokes = [strokes[i] for i in keep]
        samples, sid, arc = resample(strokes)
        stroke_len = np.zeros(len(strokes))
        np.maximum.at(stroke_len, sid, arc)
        tangents = sample_tangents(samples, sid)
        sample_hw, coverage = self._pen_ink(pen, keep, strokes, samples, tangents, sid, arc, stroke_len)
        cells = np.floor(samples).astype(np.int64)
        inside = (cells[:, 0] >= 0) & (cells[:, 0] < size) & (cells[:, 1] >= 0) & (cells[:, 1] < size)
        rep, rep_pixel = self._skeleton_representatives(samples, cells, inside)
        skeleton = np.zeros(size * size, np.float32)
        skeleton[rep_pixel] = 1.0
        skeleton = skeleton.reshape(size, size)

        tangent = np.zeros((2, size * size), np.float32)
        tx, ty = tangents[rep, 0], tangents[rep, 1]
        tangent[0, rep_pixel] = tx * tx - ty * ty  # cos 2θ
        tangent[1, rep_pixel] = 2.0 * tx * ty  # sin 2θ

        keypoints = np.stack(
            [
                _gaussian_spots(self._endpoints(strokes, stroke_len), size),
                _gaussian_spots(self._junctions(cells, inside, sid, len(strokes)), size),
            ]
        )
        ink, width, offset = self._dense(samples, tangents, sid, arc, stroke_len, rep, rep_pixel, sample_hw, coverage)
        if isinstance(pen, (Pen, Outlines)) and pen.hairlines.lines:  # after width and offset: ink only
            ink = np.maximum(ink, hairline_ink(pen.hairlines, size))
        return {
            "ink": ink[None],
            "skeleton": skeleton[None],
            "keypoints": keypoints,
            "tangent": tangent.reshape(2, size, size),
            "width": width[None],
            "offset": offset,
        }

    def _pen_ink(self, pen, keep, strokes, samples, tangents, sid, arc, stroke_len):
        """The half width (M,) at each centerline sample and the ink coverage (H, W) of the pen; the
        coverage is None where _dense's nearest-centerline coverage is the ink (a round pen of
        constant width along each stroke: where strokes meet, their widths differ by little)."""
        size = self.img_size
        if isinstance(pen, Outlines):
            polygons = [pen.polygons[i] for i in keep]
            return brush.half_widths(polygons, samples, sid), brush.fill(pen.polygons, size)
        pen = (pen if isinstance(pen, Pen) else Pen(np.asarray(pen, np.float32))).select(keep)
        sample_hw = pen.sample_half_widths(sid, arc, stroke_len, tangents)
        if pen.outline:
            return sample_hw, outline.fill(strokes, pen, size)
        if not pen.varies:
            return sample_hw, None
        ends = np.array([[s[0], s[-1]] for s in strokes])
        cut = ~closed_strokes(ends[:, 0], ends[:, 1], stroke_len) if pen.flat_caps else None
        return sample_hw, sweep(samples, tangents, sid, arc, stroke_len, sample_hw, size, cut)

    def _skeleton_representatives(
        self,
        samples: np.ndarray,
        cells: np.ndarray,
        inside: np.ndarray,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """For each skeleton pixel, the sample nearest its centre.

        Args:
            samples: (M, 2) centerline samples; cells: their (M, 2) integer pixels;
            inside: (M,) whether that pixel is on the canvas.

        Returns:
            (sample index, flat pixel index), one pair per skeleton pixel, sorted
            by pixel index (the raster order distanceTransformWithLabels uses).
        """
        size = self.img_size
        inside = np.flatnonzero(inside)
        pix = cells[inside, 1] * size + cells[inside, 0]
        frac = samples[inside] - cells[inside] - 0.5
        d2 = frac[:, 0] ** 2 + frac[:, 1] ** 2  # < 0.5, so pix * 4 + d2 sorts by pixel first
        order = np.argsort(pix * 4.0 + d2, kind="stable")  # then nearest to the centre first
        pix_sorted = pix[order]
        first = np.ones(len(order), bool)
        first[1:] = pix_sorted[1:] != pix_sorted[:-1]
        return inside[order[first]], pix_sorted[first]

    @staticmethod
    def _endpoints(strokes: List[np.ndarray], length: np.ndarray) -> np.ndarray:
        """Start and end of every open stroke (closed loops have no ends)."""
        starts = np.array([s[0] for s in strokes])
        ends = np.array([s[-1] for s in strokes])
        closed = closed_strokes(starts, ends, length)
        return np.concatenate([starts[~closed], ends[~closed]])

    def _junctions(self, cells: np.ndarray, inside: np.ndarray, sid: np.ndarray, n_strokes: int) -> np.ndarray:
        """One point per region where centerlines of different strokes meet.

        Candidates are skeleton pixels within JUNCTION_RADIUS px of a skeleton
        pixel of another stroke: each stroke's skeleton is dilated by a disk (all
        strokes in one call, stacked with blank rows between them) and pixels
        covered by two or more strokes are kept. Each 8-connected region gives
        its candidate pixel nearest the region's centroid (the lowest raster index on a tie).
        """
        size, r = self.img_size, JUNCTION_RADIUS
        if n_strokes < 2:
            return np.zeros((0, 2))
        rows = size + r  # r blank rows per layer keep dilation from leaking across
        stack = np.zeros((n_strokes * rows, size), np.uint8)
        stack[sid[inside] * rows + cells[inside, 1], cells[inside, 0]] = 1
        near = cv2.dilate(stack, self._disk).reshape(n_strokes, rows, size)[:, :size]
        count = near.sum(axis=0, dtype=np.uint8)
        on_skeleton = stack.reshape(n_strokes, rows, size)[:, :size].any(axis=0)
        candidates = ((count >= 2) & on_skeleton).astype(np.uint8)
        n, labels = cv2.connectedComponents(candidates, connectivity=8)
        if n <= 1:
            return np.zeros((0, 2))
        ys, xs = np.nonzero(labels)
        lab = labels[ys, xs]
        # Distances to the centroid in integers (times the region's size): exact ties, so the
        # lowest raster index wins them, as on the device renderer.
        size_of = np.bincount(lab)[lab]
        sx, sy = np.bincount(lab, weights=xs).astype(np.int64)[lab], np.bincount(lab, weights=ys).astype(np.int64)[lab]
        d2 = (size_of * xs - sx) ** 2 + (size_of * ys - sy) ** 2
        order = np.lexsort((d2, lab))
        first = np.ones(len(order), bool)
        first[1:] = lab[order][1:] != lab[order][:-1]
        pick = order[first]
        return np.stack([xs[pick] + 0.5, ys[pick] + 0.5], axis=1)

    def _dense(self, samples, tangents, sid, arc, stroke_len, rep, rep_pixel, sample_hw, coverage=None):
        """Ink coverage, width and offset from the nearest centerline point.

        A distance transform with pixel labels names each pixel's nearest
        skeleton pixel; of the representative samples of its 3x3 neighbours'
        nearest skeleton pixels, the one nearest the pixel is a point on the
        centerline near the nearest one; _foot_of_perpendicular refines it.
        Coverage is then the exact ramp clip(hw + 0.5 - d, 0, 1) of a disk pen
        with a one-pixel box filter: unlike a rasteriser's integer thickness it
        matches the width target to the sub-pixel. Brush ink brings its own ``coverage`` (the
        filled outlines); width and offset are then given on its ink pixels.

        Args:
            sample_hw: (M,) half pen width at each centerline sample.
            coverage: (H, W) brush ink, or None for a disk pen.

        Returns:
            (ink (H, W), width (H, W), offset (2, H, W)), float32.
        """
        size = self.img_size
        ink = np.zeros((size, size), np.float32) if coverage is None else coverage
        width = np.zeros((size, size), np.float32)
        offset = np.zeros((2, size, size), np.float32)
        if len(rep_pixel) == 0:
            return ink, width, offset
        src = np.ones(size * size, np.uint8)
        src[rep_pixel] = 0
        dist, labels = cv2.distanceTransformWithLabels(
            src.reshape(size, size), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
        )
        # A centerline point is within 0.71 px of its pixel centre, so pixels
        # farther than this cannot be touched by any pen.
        reach = dist <= sample_hw.max() + 0.5 + 0.75
        ys, xs = np.nonzero(reach if coverage is None else reach | (coverage >= INK_THRESHOLD))
        centre = np.stack([xs + 0.5, ys + 0.5], axis=1)
        nearest = self._nearest_seed(rep[labels - 1], ys, xs, centre, samples)  # labels number seeds 1..
        foot, beside = _foot_of_perpendicular(centre, nearest, samples, tangents, sid, arc, stroke_len)
        delta = foot - centre
        hw = sample_hw[beside]  # the pen's width where the foot is: a tapering stroke's target tapers
        if coverage is None:
            cover = np.clip(hw + 0.5 - np.hypot(delta[:, 0], delta[:, 1]), 0.0, 1.0)
            ink[ys, xs] = cover
        else:
            cover = coverage[ys, xs]
        on = cover >= INK_THRESHOLD
        ys, xs = ys[on], xs[on]
        offset[:, ys, xs] = delta[on].T
        width[ys, xs] = hw[on]
        return ink, width, offset

    @staticmethod
    def _nearest_seed(seed: np.ndarray, ys, xs, centre: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Per pixel (ys, xs), the sample nearest its centre among the seeds of its 3x3
        neighbourhood in ``seed`` (H, W) -- one jump-flooding sweep, as the device renderer ends
        with: the nearest skeleton *pixel* is not always the one holding the nearest sample."""
        size = seed.shape[1] + 2
        padded = np.pad(seed, 1, mode="edge").ravel()
        window = (np.arange(3)[:, None] * size + np.arange(3)[None, :]).ravel()
        candidates = padded[(ys * size + xs)[:, None] + window]  # (K, 9)
        dx = samples[:, 0][candidates] - centre[:, :1]  # components: a length-2 axis reduces slowly
        dy = samples[:, 1][candidates] - centre[:, 1:]
        return candidates[np.arange(len(ys)), (dx * dx + dy * dy).argmin(1)]

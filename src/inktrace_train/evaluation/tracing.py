"""A skeleton map -> strokes: polylines with pen widths that run straight through crossings.

The skeleton is thinned to one pixel, cut open around every junction, and split into
segments (8-connected runs of pixels, each ordered end to end). At each junction the segment
ends that meet there are paired by how straight the continuation would be -- the direction of
each end comes from the predicted tangent field when there is one (the model's), from the
pixels otherwise (a classical skeleton) -- so two strokes that cross stay two strokes instead
of four pieces. Paired segments are joined into one stroke across the junction; an unpaired
end (the stem of a T) is extended to the junction it stops at.

Whole-image steps are numpy/OpenCV; the Python loops run over segments and over the pixels of
a segment (a 64x64 glyph has a few hundred skeleton pixels): a glyph traces in about a
millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

# Tuned on perfect targets (the renderer's) of 150 validation glyphs: stroke recovery F1 0.73 at
# 1.5 px / 40 deg, 0.67 at 1.0 or 2.0 px, 0.66 at 2.5 px (short strokes vanish in wider cuts).
JOIN_RADIUS = 1.5  # px: skeleton pixels this close to a junction point are cut away and re-joined
END_REACH = 2.0  # px beyond JOIN_RADIUS: an end this close to a junction point meets there
MAX_TURN_DEG = 40.0  # a continuation through a junction bends by at most this much
DIRECTION_PIXELS = 4  # pixels at a segment's end that give its direction
MIN_STROKE_PX = 3.0  # shorter traced pieces (specks, spurs) are dropped
# Decoding the predicted keypoint maps (predict, evaluate, the TensorBoard grid), chosen on 150
# validation glyphs of each test set (clean, scan, brush) with the stage=all model of the README's
# results (focal keypoint loss): a peak (3x3 maximum) above KEYPOINT_PEAK is an endpoint or
# junction (junction F1 0.811 / 0.792 / 0.759 at 0.35 against 0.798 / 0.779 / 0.759 at the
# training metric's 0.3); a junction peak above JUNCTION_PEAK cuts the skeleton for tracing
# (stroke F1 0.720 / 0.641 / 0.650 at 0.3, against 0.707 / 0.619 / 0.627 at 0.2 and 0.706 /
# 0.628 / 0.652 at 0.4). MIN_STROKE_PX was chosen on 200 validation glyphs with an earlier model.
KEYPOINT_PEAK = 0.35
JUNCTION_PEAK = 0.3

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@dataclass
class Stroke:
    """One traced stroke: ``points`` (N, 2) x, y in pixel coordinates (pixel centres at
    i + 0.5), ``width`` its full pen width in pixels (NaN when no width map was given)."""

    points: np.ndarray
    width: float

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum()) if len(self.points) > 1 else 0.0


_RING = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # dy, dx: N, NE, E, ... clockwise


def thin(mask: np.ndarray) -> np.ndarray:
    """A bool (H, W) mask thinned to 8-connected one-pixel lines.

    Zhang-Suen passes (whole-image numpy) strip thick parts, sparing pixels with only two
    neighbours (the classical rule eats a staircase line from its ends, pixel by pixel); then
    the corners of 4-connected steps are removed one at a time where that keeps the
    neighbours connected, so that every line pixel has two neighbours and only a branching
    pixel has three.
    """
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for first in (True, False):
            p = [np.roll(img, (-dy, -dx), (0, 1)) for dy, dx in _RING]
            count = sum(p)
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
            north, east, south, west = p[0], p[2], p[4], p[6]
            if first:
                side = (north * east * south == 0) & (east * south * west == 0)
            else:
                side = (north * east * west == 0) & (north * south * west == 0)
            remove = (img == 1) & (count >= 3) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                img[remove] = 0
                changed = True
        if not changed:
            break
    p = [np.roll(img, (-dy, -dx), (0, 1)).astype(bool) for dy, dx in _RING]
    steps = [p[i] & p[(i + 2) % 8] & ~p[i + 1] for i in (0, 2, 4, 6)]  # N&E without NE, E&S without SE, ...
    corner = (img == 1) & (steps[0] | steps[1] | steps[2] | steps[3])
    for y, x in zip(*np.nonzero(corner), strict=True):  # a few per line: sequential is safe
        if img[y, x] and _simple(img, y, x):
            img[y, x] = 0
    return img[1:-1, 1:-1].astype(bool)


def _simple(img: np.ndarray, y: int, x: int) -> bool:
    """Whether removing pixel (y, x) keeps its neighbours one 8-connected group (and it has two+)."""
    ring = [bool(img[y + dy, x + dx]) for dy, dx in _RING]
    if sum(ring) < 2:
        return False
    parent = list(range(8))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(8):
        for j in (i + 1, i + 2) if i % 2 == 0 else (i + 1,):  # ring neighbours; N-E, E-S... touch diagonally
            j %= 8
            if ring[i] and ring[j]:
                parent[find(i)] = find(j)
    return len({find(i) for i in range(8) if ring[i]}) == 1


def junctions_from_pixels(skeleton: np.ndarray) -> np.ndarray:
    """Junction points of a thinned skeleton, the classical way: pixels with three or more
    skeleton neighbours, one point (the centroid) per 8-connected cluster of them. (K, 2) x, y."""
    sk = skeleton.astype(np.uint8)
    neighbours = cv2.filter2D(sk, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT) - sk
    branch = ((neighbours >= 3) & (sk == 1)).astype(np.uint8)
    n, _, _, centroids = cv2.connectedComponentsWithStats(branch, connectivity=8)
    return centroids[1:] + 0.5 if n > 1 else np.zeros((0, 2))


def _order(pixels: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """The pixels of one 8-connected thin segment in path order, from an end (any pixel of a loop)."""
    cells = set(pixels)
    degree = {c: sum((c[0] + dy, c[1] + dx) in cells for dy, dx in _NEIGHBOURS) for c in pixels}
    start = min(pixels, key=lambda c: (degree[c], c))
    path, seen = [start], {start}
    while True:
        y, x = path[-1]
        options = [c for c in ((y + dy, x + dx) for dy, dx in _NEIGHBOURS) if c in cells and c not in seen]
        if not options:
            return path
        nxt = min(options, key=lambda c: abs(c[0] - y) + abs(c[1] - x))  # 4-neighbours first: no corner skipping
        path.append(nxt)
        seen.add(nxt)


@dataclass
class _End:
    segment: int
    at_start: bool  # which end of the segment
    point: np.ndarray  # x, y
    outward: np.ndarray  # unit direction leaving the segment


def _end_direction(points: np.ndarray, at_start: bool, tangent: Optional[np.ndarray]) -> np.ndarray:
    """Unit direction pointing out of the segment at one end: from the last pixels' geometry,
    or from the tangent field there (axial: its sign is taken from the geometry)."""
    k = min(DIRECTION_PIXELS, len(points) - 1)
    tip, inner = (points[0], points[k]) if at_start else (points[-1], points[-1 - k])
    geometric = tip - inner
    norm = np.linalg.norm(geometric)
    geometric = geometric / norm if norm > 0 else np.array([1.0, 0.0])
    if tangent is None:
        return geometric
    near = points[: k + 1] if at_start else points[-1 - k :]
    cells = np.floor(near).astype(int)
    c2, s2 = tangent[0][cells[:, 1], cells[:, 0]].mean(), tangent[1][cells[:, 1], cells[:, 0]].mean()
    if math.hypot(c2, s2) < 0.2:  # no confident direction there
        return geometric
    angle = 0.5 * math.atan2(s2, c2)
    axis = np.array([math.cos(angle), math.sin(angle)])
    return axis if axis @ geometric >= 0 else -axis


def _pair(ends: List[_End]) -> List[Tuple[int, int]]:
    """Pairs of end indices that continue each other straight through their junction: greedily
    by the smallest turn, each end used once, turns over MAX_TURN_DEG never."""
    candidates = []
    for i in range(len(ends)):
        for j in range(i + 1, len(ends)):
            a, b = ends[i], ends[j]
            if a.segment == b.segment and a.at_start == b.at_start:
                continue
            # Leaving a along its outward direction should arrive at b against b's.
            cos_turn = float(-(a.outward @ b.outward))
            gap = b.point - a.point
            dist = np.linalg.norm(gap)
            if dist > 0:  # the jump itself should also go the way both ends point
                cos_turn = min(cos_turn, float(a.outward @ gap / dist), float(-(b.outward @ gap) / dist))
            turn = math.degrees(math.acos(max(-1.0, min(1.0, cos_turn))))
            if turn <= MAX_TURN_DEG:
                candidates.append((turn, i, j))
    used, pairs = set(), []
    for _, i, j in sorted(candidates):
        if i not in used and j not in used:
            used.update((i, j))
            pairs.append((i, j))
    return pairs


def trace(
    skeleton: np.ndarray,
    junctions: Optional[np.ndarray] = None,
    tangent: Optional[np.ndarray] = None,
    half_width: Optional[np.ndarray] = None,
) -> List[Stroke]:
    """Trace strokes.

    Args:
        skeleton: bool (H, W) skeleton pixels (any thickness: thinned here).
        junctions: (K, 2) x, y junction points (the model's junction peaks); None: found from
            the thinned skeleton's pixel graph (the classical tracer).
        tangent: (2, H, W) cos 2θ, sin 2θ of the stroke direction (the model's); None: end
            directions from the pixels.
        half_width: (H, W) half pen width, px; each stroke's width is twice its median on the
            stroke's pixels.

    Returns:
        The strokes, longest first.
    """
    sk = thin(np.asarray(skeleton, bool))
    junctions = junctions_from_pixels(sk) if junctions is None else np.asarray(junctions, float).reshape(-1, 2)
    h, w = sk.shape
    ys, xs = np.mgrid[0:h, 0:w]
    zone = np.zeros_like(sk)
    for jx, jy in junctions:
        zone |= (xs + 0.5 - jx) ** 2 + (ys + 0.5 - jy) ** 2 <= JOIN_RADIUS**2
    pieces = (sk & ~zone).astype(np.uint8)
    n, labels = cv2.connectedComponents(pieces, connectivity=8)
    order = np.argsort(labels, axis=None, kind="stable")
    flat = labels.ravel()[order]
    bounds = np.searchsorted(flat, np.arange(1, n + 1))
    segments: List[np.ndarray] = []
    for lab in range(1, n):
        idx = order[bounds[lab - 1] : bounds[lab]]
        pixels = list(zip((idx // w).tolist(), (idx % w).tolist(), strict=True))
        path = _order(pixels)
        segments.append(np.array([(x + 0.5, y + 0.5) for y, x in path]))

    # Ends that meet at each junction, paired by straightness.
    links: Dict[Tuple[int, bool], Tuple[int, bool]] = {}  # (segment, at_start) -> the end it joins
    stops: Dict[Tuple[int, bool], np.ndarray] = {}  # unpaired ends at a junction: extend to it
    at: Dict[int, List[_End]] = {}
    for s, points in enumerate(segments):
        for at_start in (True, False):
            tip = points[0] if at_start else points[-1]
            if len(junctions):
                d = np.linalg.norm(junctions - tip, axis=1)
                k = int(d.argmin())
                if d[k] <= JOIN_RADIUS + END_REACH:
                    at.setdefault(k, []).append(_End(s, at_start, tip, _end_direction(points, at_start, tangent)))
            if len(points) == 1:
                break  # a one-pixel segment has one end
    for k, ends in at.items():
        paired = set()
        for i, j in _pair(ends):
            a, b = ends[i], ends[j]
            links[(a.segment, a.at_start)] = (b.segment, b.at_start)
            links[(b.segment, b.at_start)] = (a.segment, a.at_start)
            paired.update((i, j))
        for i, e in enumerate(ends):
            if i not in paired:
                stops[(e.segment, e.at_start)] = junctions[k]

    strokes, done = [], set()
    for s in range(len(segments)):
        if s in done:
            continue
        # Walk back to the first segment of this chain (or around a closed one), then forward.
        first, start_end = s, True
        while (first, start_end) in links:
            nxt, nxt_start = links[(first, start_end)]
            if nxt == s:
                break
            first, start_end = nxt, not nxt_start
        pieces_pts, seg, from_start = [], first, start_end
        while seg not in done:
            done.add(seg)
            pts = segments[seg] if from_start else segments[seg][::-1]
            pieces_pts.append(pts)
            far = (seg, not from_start)
            if far not in links:
                break
            seg, nxt_start = links[far]
            from_start = nxt_start
        points = np.concatenate(pieces_pts)
        head, tail = (first, start_end), far
        if head in stops:
            points = np.concatenate([stops[head][None], points])
        if tail in stops:
            points = np.concatenate([points, stops[tail][None]])
        stroke = Stroke(points, _width(points, half_width))
        if stroke.length >= MIN_STROKE_PX:
            strokes.append(stroke)
    return sorted(strokes, key=lambda st: -st.length)


def _width(points: np.ndarray, half_width: Optional[np.ndarray]) -> float:
    if half_width is None:
        return math.nan
    h, w = half_width.shape
    cells = np.clip(np.floor(points).astype(int), 0, [w - 1, h - 1])
    return float(2 * np.median(half_width[cells[:, 1], cells[:, 0]]))


def to_svg(strokes: List[Stroke], size: int) -> str:
    """An SVG document (viewBox 0 0 size size) with one round-capped path per stroke."""
    paths = []
    for st in strokes:
        d = "M " + " L ".join(f"{x:.2f} {y:.2f}" for x, y in st.points)
        width = st.width if math.isfinite(st.width) else 1.0
        paths.append(
            f'  <path d="{d}" fill="none" stroke="black" stroke-width="{width:.2f}" '
            'stroke-linecap="round" stroke-linejoin="round"/>'
        )
    body = "\n".join(paths)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size * 4}" height="{size * 4}">\n'
        f"{body}\n</svg>\n"
    )

"""A skeleton map -> strokes: polylines with pen widths that run straight through crossings,
and that never drop ink.

The rule, in eight steps:

1. The skeleton is thinned to one pixel and cleaned (:func:`skeleton.clean`: specks and spurs of
   at most 2 px go). With the model's endpoint, ink and width maps, each skeleton end that the
   model does not call a stroke end is bridged straight across the ink to the skeleton it points
   at (in wide ink the map fades where strokes meet). Every pixel left is covered by the
   strokes: it is a vertex of one, or lies within 1 px of one.
2. The skeleton is cut around every junction -- the given junction points (the model's), each
   pixel within JOIN_RADIUS of one, and every branching pixel of the pixel graph with its
   neighbours (BRANCH_CUT). The cut pixels form *zones*; what is left splits into *segments*,
   each a simple line or loop (no branching pixel is left in one).
3. At each zone the segment ends that touch it are paired by how straight the continuation would
   be -- the direction of an end comes from the predicted tangent field when there is one, from
   the pixels otherwise (a one-pixel segment's ends point at the zones they enter) -- so two
   strokes that cross stay two strokes, not four pieces. A pair is joined straight across the
   zone; an unpaired end (the stem of a T) runs on through the zone's pixels to its nearest
   junction point, or to the farthest one straight ahead of it where junctions close together
   have merged into one zone (AHEAD_DEG). With the model's endpoint map, the last two unpaired
   ends at a zone no endpoint marks are one stroke's corner, joined through it (CORNER_TURN_DEG).
4. Any skeleton pixel still farther than 1 px from every stroke (a zone that no segment touches,
   a side of a thick junction) is walked into paths that join the stroke they touch or become
   strokes of their own.
5. With the width map, a stroke lying wholly within one half width of a longer stroke (a spur
   of wide ink, a second line inside it) is part of that stroke's ink and is not emitted; so is,
   with the ink map, one within 1.5 half widths that runs along a longer stroke with ink all the
   way across to it (the skeleton drawn along both edges of heavy ink).
6. A stroke that closes on itself (a ring: a box drawn in one line) is cut into the three strokes
   that regular script writes 口 with (RING_MIN_PX).
7. With the endpoint map, a stroke that passes two endpoint peaks a few pixels apart and turns
   sharply between them is two strokes met end to start (END_PAIR_*): it is cut at that turn.
8. A stroke much longer than regular script writes (LONG_STROKE_SIDES) is cut at its sharpest
   turn: strokes a joined hand wrote without lifting the pen.

Whole-image steps are numpy/OpenCV; the Python loops run over segments, zones and pixels (a 64x64
glyph has a few hundred skeleton pixels).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

import cv2
import numpy as np

from inktrace_train.evaluation.skeleton import (
    Pixel,
    branch_pixels,
    clean,
    components,
    is_loop,
    junctions_from_pixels,
    neighbours,
    pixels,
    shortest_path,
    thin,
    walk_cover,
)

__all__ = [
    "JUNCTION_PEAK",
    "KEYPOINT_PEAK",
    "SKELETON_THRESHOLD",
    "Stroke",
    "junctions_from_pixels",
    "thin",
    "to_svg",
    "trace",
]

# JOIN_RADIUS was tuned on perfect targets (the renderer's) of 150 validation glyphs: stroke
# recovery F1 0.73 at 1.5 px, 0.67 at 1.0 or 2.0 px, 0.66 at 2.5 px (short strokes vanish in wider
# cuts). MAX_TURN_DEG on the model's maps of the validation split and fonts
# (scripts/tracer_sweep.py, docs/evaluation.md): the lowest fonts' count error that keeps each
# set's stroke F1 within 0.01 of the value before; 50 deg (1.150) over 40 (1.224), then with the
# wide-ink steps below 55 deg (1.073) over 50 (1.091; 60 cost brush F1 0.015), then with corners
# and BRANCH_CUT 60 deg (0.969) over 55 (0.973), 50 (0.982) and 65 (0.986), then with one-pixel
# segments' directions fixed and JUNCTION_PEAK 0.25, 50 deg (0.818) over 45 (0.840), 55 (0.819)
# and 60 (0.828).
JOIN_RADIUS = 1.5  # px: skeleton pixels this close to a junction point are cut away and re-joined
MAX_TURN_DEG = 50.0  # a continuation through a junction bends by at most this much
DIRECTION_PIXELS = 4  # pixels at a segment's end that give its direction
COVER_PX = 1.0  # every skeleton pixel ends within this distance of a traced stroke
# Wide ink, chosen the same way (fonts' count error 1.150 with neither, 1.107 bridging, 1.094
# both, 1.091 with END_NEAR 4.5 px rather than 2). In wide ink the skeleton map often stops short of
# where strokes meet: a skeleton end that no endpoint peak marks (none within END_NEAR px) is
# extended straight on, across the ink, by up to BRIDGE half pen widths (at least 2 px), to the
# skeleton it points at. A stroke lying wholly within FOOTPRINT half pen widths of a longer one is
# part of that stroke's ink (a spur, a second line inside it) and is not emitted. 0: off.
BRIDGE = 2.5
END_NEAR = 4.5
FOOTPRINT = 1.0
# In heavy ink the skeleton map can run along both edges of one wide stroke. A stroke lying
# within PARALLEL_FOOTPRINT half widths of a longer one, running along it (within PARALLEL_DEG),
# with ink (at least PARALLEL_INK) all the way across to it, is that stroke's other edge and is
# not emitted; two strokes side by side have paper between them, and a stroke that meets another
# at an angle does not run along it. 0: off. Chosen on the validation fonts and on candidate fonts
# that over-count (docs/evaluation.md): 1.5 over 0 and 2.
PARALLEL_FOOTPRINT = 1.5
PARALLEL_DEG = 30.0
PARALLEL_INK = 0.5
# A stroke that turns sharply (the corner of 口's second stroke, a hook) meets its own other half
# at a zone the straight pairing leaves alone: in wide ink thinning grows a spur into the outer
# corner, and its branching pixel cuts the stroke in two. With the model's endpoint map, a zone
# where exactly two ends of real segments (spurs shorter than the half width aside) are left
# unpaired, turning by at most CORNER_TURN_DEG, with no endpoint peak within CORNER_END_NEAR px of
# its hub, is such a corner: the two are joined through it. Two strokes that meet end to end there
# (口's first corner) are told apart by the endpoint peaks. 0: off. Chosen on the validation fonts
# (docs/evaluation.md): 180 over 120 and 0; then 3 px over 1.5, 4.5 and 6.
CORNER_TURN_DEG = 180.0
CORNER_END_NEAR = 3.0
# A branching pixel of the pixel graph is cut with the skeleton pixels within BRANCH_CUT px of it
# (a square; the model's junction points already cut a JOIN_RADIUS disc). Cut alone (0), two of
# its neighbours that are diagonal to each other stay joined, and the bar and the stem that meet
# there are walked as one bent segment. Chosen on the validation fonts (docs/evaluation.md): 1
# over 0 and 2.
BRANCH_CUT = 1
# Regular script writes no stroke that closes on itself (口 is three strokes: 丨 down the left,
# 𠃍 across the top and down the right, 一 along the bottom), but rounded, marker and cursive
# hands draw a box as one ring. A traced stroke that comes back to where it started, at least
# RING_MIN_PX long, is cut at its points nearest its box's top-left, bottom-left and bottom-right
# corners into those three strokes. math.inf: off. Chosen on the validation fonts
# (docs/evaluation.md).
RING_MIN_PX = 16.0
# No stroke that regular script writes is much longer than the glyph is wide: in the validation
# renders (KanjiVG and hanzi-writer-data at 64 px, the glyph 85 % of the side) 99 % are shorter
# than 51 px and the longest is 77 px. A traced stroke longer than LONG_STROKE_SIDES canvas sides
# is strokes that a joined hand wrote without lifting the pen; it is cut where it turns most
# sharply (between the chords TURN_SPAN_PX of it either side), at least MIN_PIECE_PX from each of
# its ends, where that turn is LONG_TURN_DEG or more, and its pieces again while any is that long.
# math.inf: off. Chosen on the validation fonts, with the cursive candidate font as the check
# (docs/evaluation.md): 1.25 sides (80 px at 64) and 70 deg over 1.1-1.4 sides and 60-100 deg.
LONG_STROKE_SIDES = 1.25
LONG_TURN_DEG = 70.0
TURN_SPAN_PX = 3.0
MIN_PIECE_PX = 5.0
# Where one stroke ends and the next starts in the same ink (the corner where 口's first stroke
# meets its second, a marker's strokes run together), the tracer may have walked the two as one:
# the endpoint map marks both ends, though the ink runs on. A traced stroke that passes two
# endpoint peaks (each within END_PAIR_NEAR px of a vertex, at least MIN_PIECE_PX from its ends)
# END_PAIR_GAP px of arc apart, and turns by END_PAIR_TURN_DEG or more between them (1 px either
# side, chords TURN_SPAN_PX), is cut at that sharpest turn; a straight stroke with two marks on it
# is not (heavy ink raises endpoint peaks inside strokes). 0: off. Chosen on the validation fonts,
# with the candidate fonts as the check (docs/evaluation.md): 45 deg within 1.5 px, 2-14 px apart,
# over 0 and 30-60 deg, 1 and 2 px, 10 and 20 px.
END_PAIR_NEAR = 1.5
END_PAIR_GAP = (2.0, 14.0)
END_PAIR_TURN_DEG = 45.0
# Junctions closer than their cuts merge into one zone: 目's middle stroke crossed by bars 3 px
# apart lies wholly inside one, with several junction points. An unpaired end runs through its
# zone to the farthest junction point ahead of it, within AHEAD_DEG of its direction (else to its
# nearest), so that stroke is traced on through the zone instead of stopping at the first
# junction and leaving the rest in pieces. 0: always the nearest. Chosen on the validation fonts
# (docs/evaluation.md): 30 over 0, 10-25, 40 and 50.
AHEAD_DEG = 30.0
# Decoding the predicted keypoint maps (predict, evaluate, the TensorBoard grid), chosen on 150
# validation glyphs of each test set (clean, scan, brush) with the stage=all model of the README's
# results (focal keypoint loss): a peak (3x3 maximum) above KEYPOINT_PEAK is an endpoint or
# junction (junction F1 0.811 / 0.792 / 0.759 at 0.35 against 0.798 / 0.779 / 0.759 at the
# training metric's 0.3); a junction peak above JUNCTION_PEAK cuts the skeleton for tracing
# (stroke F1 0.720 / 0.641 / 0.650 at 0.3, against 0.707 / 0.619 / 0.627 at 0.2 and 0.706 /
# 0.628 / 0.652 at 0.4). With one-pixel segments' directions fixed (2026-12-05) it was chosen again
# on the validation fonts as MAX_TURN_DEG is: 0.25 (0.828 at 60 deg) over 0.3 (0.852), 0.2 and 0.35.
KEYPOINT_PEAK = 0.35
SKELETON_THRESHOLD = 0.5  # sigmoid(skeleton logits) >= this is a skeleton pixel (metrics, tracing)
JUNCTION_PEAK = 0.25

End = Tuple[int, bool]  # (segment, at its start)


@dataclass
class Stroke:
    """One traced stroke: ``points`` (N, 2) x, y in pixel coordinates (pixel centres at
    i + 0.5), ``width`` its full pen width in pixels (NaN when no width map was given)."""

    points: np.ndarray
    width: float

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum()) if len(self.points) > 1 else 0.0


@dataclass
class _Zone:
    cells: Set[Pixel]
    hubs: Dict[Pixel, np.ndarray]  # the zone pixel nearest each junction point (x, y) in reach; else its centre


@dataclass
class _Tip:
    end: End
    point: np.ndarray  # x, y
    outward: np.ndarray  # unit direction leaving the segment


def _xy(path: List[Pixel]) -> np.ndarray:
    return np.array([(x + 0.5, y + 0.5) for y, x in path], float).reshape(-1, 2)


def _zones(sk: np.ndarray, cells: Set[Pixel], junctions: np.ndarray) -> Tuple[List[_Zone], np.ndarray]:
    """The cut zones and a label map (-1 outside any zone)."""
    h, w = sk.shape
    cut = np.zeros_like(sk)
    if len(junctions):
        ys, xs = np.mgrid[0:h, 0:w]
        for jx, jy in junctions:
            cut |= (xs + 0.5 - jx) ** 2 + (ys + 0.5 - jy) ** 2 <= JOIN_RADIUS**2
        cut &= sk
    r = BRANCH_CUT
    for y, x in branch_pixels(cells):
        around = np.s_[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
        cut[around] |= sk[around]
    zones, labels = [], np.full(sk.shape, -1, int)
    for comp in components(cut):
        pts = _xy(comp)
        near = [j for j in junctions if np.min(np.linalg.norm(pts - j, axis=1)) <= JOIN_RADIUS]
        hubs = {comp[int(np.argmin(np.linalg.norm(pts - j, axis=1)))]: j for j in (near or [pts.mean(axis=0)])}
        for y, x in comp:
            labels[y, x] = len(zones)
        zones.append(_Zone(set(comp), hubs))
    return zones, labels


def _segments(sk: np.ndarray, labels: np.ndarray) -> Tuple[List[List[Pixel]], List[bool]]:
    """The pixel paths of the skeleton outside the zones, and whether each is a closed loop."""
    paths, loops = [], []
    for comp in components(sk & (labels < 0)):
        cells = set(comp)
        for path in walk_cover(cells):  # one path a segment: no branching pixel is left in one
            paths.append(path)
            loops.append(len(cells) == len(path) and is_loop(path, cells))
    return paths, loops


def _zone_at(tip: Pixel, labels: np.ndarray, zones: List[_Zone], exclude: int = -1) -> int:
    """The zone touching a segment's end pixel (the one with the nearest centre), or -1."""
    h, w = labels.shape
    y, x = tip
    found = {
        int(labels[y + dy, x + dx])
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if 0 <= y + dy < h and 0 <= x + dx < w and labels[y + dy, x + dx] >= 0
    } - {exclude}
    if not found:
        return -1
    return min(found, key=lambda z: min(_d2(h, tip) for h in zones[z].hubs))


def _end_direction(
    points: np.ndarray, at_start: bool, tangent: Optional[np.ndarray], toward: Optional[np.ndarray] = None
) -> np.ndarray:
    """Unit direction pointing out of the segment at one end: from the last pixels' geometry,
    or from the tangent field there (axial: its sign is taken from the geometry). A one-pixel
    segment (between two junctions close together) has no geometry of its own: its ends point
    ``toward`` the zone pixel each enters."""
    k = min(DIRECTION_PIXELS, len(points) - 1)
    tip, inner = (points[0], points[k]) if at_start else (points[-1], points[-1 - k])
    geometric = toward - tip if k == 0 and toward is not None else tip - inner
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


def _pair(tips: List[_Tip]) -> List[Tuple[int, int]]:
    """Pairs of tip indices that continue each other straight through their zone: greedily
    by the smallest turn, each tip used once, turns over MAX_TURN_DEG never."""
    candidates = []
    for i in range(len(tips)):
        for j in range(i + 1, len(tips)):
            if tips[i].end == tips[j].end:
                continue
            turn = _turn(tips[i], tips[j])
            if turn <= MAX_TURN_DEG:
                candidates.append((turn, i, j))
    used, pairs = set(), []
    for _, i, j in sorted(candidates):
        if i not in used and j not in used:
            used.update((i, j))
            pairs.append((i, j))
    return pairs


def _turn(a: _Tip, b: _Tip) -> float:
    """Degrees by which leaving ``a`` along its outward direction and arriving at ``b`` against
    its own turns (the jump between them counted too: it should go the way both ends point)."""
    cos_turn = float(-(a.outward @ b.outward))
    gap = b.point - a.point
    dist = np.linalg.norm(gap)
    if dist > 0:
        cos_turn = min(cos_turn, float(a.outward @ gap / dist), float(-(b.outward @ gap) / dist))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos_turn))))


def _spurs(paths: List[List[Pixel]], entries: Dict[End, Tuple[int, Pixel]], half_width: np.ndarray) -> Set[End]:
    """The zone ends of spurs: pieces no longer than the half width there (at least 2 px) whose
    other end is free, as thinning grows them into the corners and ends of wide ink."""
    out = set()
    for end in entries:
        s, at_start = end
        path = paths[s]
        if (s, not at_start) not in entries and len(path) <= max(2.0, float(half_width[path[0 if at_start else -1]])):
            out.add(end)
    return out


def _join_corners(
    tips_at: Dict[int, List[_Tip]], links: Dict[End, End], zones: List[_Zone], spurs: Set[End], endpoints: np.ndarray
) -> Dict[End, np.ndarray]:
    """Links (in ``links``) the two ends at each zone that is one stroke's corner; returns the
    hub each such pair passes through, by end."""
    via = {}
    for z, tips in tips_at.items():
        corner = _corner(tips, links, spurs, zones[z], endpoints)
        if corner is not None:
            a, b, hub = corner
            for end in (a, b):  # a spur it had continued goes on alone
                if end in links:
                    del links[links.pop(end)]
            links[a], links[b] = b, a
            via[a] = via[b] = hub
    return via


def _corner(
    tips: List[_Tip], links: Dict[End, End], spurs: Set[End], zone: _Zone, endpoints: np.ndarray
) -> Optional[Tuple[End, End, np.ndarray]]:
    """The two ends to join through a zone that is one stroke's corner, and its hub; None if it
    is not one (see CORNER_TURN_DEG). An end the straight pairing gave a spur is still alone."""
    lone = [t for t in tips if t.end not in spurs and (t.end not in links or links[t.end] in spurs)]
    if len(lone) != 2 or lone[0].end[0] == lone[1].end[0] or _turn(lone[0], lone[1]) > CORNER_TURN_DEG:
        return None
    hub = np.mean(list(zone.hubs.values()), axis=0)
    if _marked(hub, endpoints, CORNER_END_NEAR):
        return None  # the model says a stroke ends here: strokes meet, none turns
    return lone[0].end, lone[1].end, hub


def _chains(n: int, links: Dict[End, End], loops: List[bool]) -> List[List[Tuple[int, bool]]]:
    """Every segment once, in chains of (segment, traversed from its start) that follow the links;
    a chain that comes back to its first segment is closed (its last link leads to the first)."""
    chains, done = [], set()
    for s in range(n):
        if s in done:
            continue
        first, from_start = s, True  # walk back to the head of the chain (or once round a cycle)
        while (first, from_start) in links and not loops[first]:
            prev, prev_at_start = links[(first, from_start)]
            if prev == s:
                break
            first, from_start = prev, not prev_at_start
        chain, seg = [], first
        while seg not in done:
            done.add(seg)
            chain.append((seg, from_start))
            far = (seg, not from_start)
            if far not in links:
                break
            seg, from_start = links[far]
        chains.append(chain)
    return chains


def trace(
    skeleton: np.ndarray,
    junctions: Optional[np.ndarray] = None,
    tangent: Optional[np.ndarray] = None,
    half_width: Optional[np.ndarray] = None,
    endpoints: Optional[np.ndarray] = None,
    ink: Optional[np.ndarray] = None,
) -> List[Stroke]:
    """Trace strokes.

    Args:
        skeleton: bool (H, W) skeleton pixels (any thickness: thinned and cleaned here).
        junctions: (K, 2) x, y junction points (the model's junction peaks); anywhere: points
            off the skeleton cut nothing. None: the branching points of the thinned skeleton's
            pixel graph, before its spurs are pruned (the classical tracer).
        tangent: (2, H, W) cos 2θ, sin 2θ of the stroke direction (the model's); None: end
            directions from the pixels.
        half_width: (H, W) half pen width, px; each stroke's width is twice its median on the
            stroke's pixels.
        endpoints: (E, 2) x, y stroke ends (the model's endpoint peaks), and ``ink`` (H, W) ink
            probability: with ``half_width``, skeleton ends that no endpoint marks are bridged
            across the ink to the skeleton they point at (BRIDGE).

    Returns:
        The strokes, longest first. Every pixel of the cleaned (and bridged) skeleton lies within
        COVER_PX of one (:func:`untraced` checks it), or with ``half_width`` within the footprint
        of one.
    """
    thinned = thin(np.asarray(skeleton, bool))
    sk = clean(thinned)
    cells = pixels(sk)
    if endpoints is not None:
        endpoints = np.asarray(endpoints, float).reshape(-1, 2)
    if BRIDGE > 0 and endpoints is not None and half_width is not None and ink is not None:
        sk = clean(thin(_bridged(sk, cells, endpoints, tangent, half_width, ink)))
        cells = pixels(sk)
    if junctions is None:  # before cleaning: a spur that thinning leaves at a corner marks where strokes meet
        junctions = junctions_from_pixels(thinned)
    junctions = np.asarray(junctions, float).reshape(-1, 2)
    zones, labels = _zones(sk, cells, junctions)
    paths, loops = _segments(sk, labels)
    segments = [_xy(p) for p in paths]

    # Each segment end that touches a zone, and the zone pixel it enters by.
    tips_at: Dict[int, List[_Tip]] = {}
    entries: Dict[End, Tuple[int, Pixel]] = {}
    for s, path in enumerate(paths):
        if loops[s]:
            continue
        taken = -1
        for at_start in (True, False):
            tip = path[0] if at_start else path[-1]
            z = _zone_at(tip, labels, zones, exclude=taken)
            if z < 0:
                continue
            if len(path) == 1:
                taken = z  # a one-pixel segment's two ends meet two different zones
            entry = min(neighbours(tip, zones[z].cells) or zones[z].cells, key=lambda c: _d2(c, tip))
            entries[(s, at_start)] = (z, entry)
            point = segments[s][0] if at_start else segments[s][-1]
            outward = _end_direction(segments[s], at_start, tangent, _xy([entry])[0])
            tips_at.setdefault(z, []).append(_Tip((s, at_start), point, outward))
    links: Dict[End, End] = {}
    for tips in tips_at.values():
        for i, j in _pair(tips):
            links[tips[i].end], links[tips[j].end] = tips[j].end, tips[i].end
    via: Dict[End, np.ndarray] = {}  # a corner's pair passes through the zone's hub
    if CORNER_TURN_DEG > 0 and endpoints is not None and half_width is not None:
        via = _join_corners(tips_at, links, zones, _spurs(paths, entries, half_width), endpoints)
    # An unpaired end runs through the zone to the farthest junction ahead of it, else its nearest
    # (the point itself when it lies within a pixel of the skeleton there); a pair jumps straight
    # from one end to the other.
    routes: Dict[End, np.ndarray] = {}
    tip_of = {t.end: t for tips in tips_at.values() for t in tips}
    for end, (z, entry) in entries.items():
        if end not in links:
            ahead = _ahead(tip_of[end], zones[z].hubs) if AHEAD_DEG > 0 and len(zones[z].hubs) > 1 else None
            path = shortest_path(entry, set(zones[z].hubs) if ahead is None else {ahead}, zones[z].cells)
            route = _xy(path)
            point = zones[z].hubs[path[-1]]
            if np.linalg.norm(route[-1] - point) <= 1.0:
                route[-1] = point
            routes[end] = route

    polylines = []
    for chain in _chains(len(segments), links, loops):
        head = chain[0]
        parts = [routes[head][::-1]] if head in routes and head not in links else []
        for s, from_start in chain:
            parts.append(segments[s] if from_start else segments[s][::-1])
            far = (s, not from_start)
            if far in routes:
                parts.append(routes[far])
            elif far in via:
                parts.append(via[far][None])
        if loops[head[0]] or head in links:  # a closed stroke ends where it starts
            first = segments[head[0]]
            parts.append(first[:1] if head[1] else first[-1:])
        polylines.append(np.concatenate(parts))
    polylines = _cover_rest(sk, cells, polylines)
    strokes = _longest_first([Stroke(p, _width(p, half_width)) for p in polylines])
    if FOOTPRINT > 0 and half_width is not None:
        strokes = _outside_footprints(strokes, ink)
    strokes = _cut_rings(strokes, half_width)
    if END_PAIR_TURN_DEG > 0 and endpoints is not None and len(endpoints) > 1:
        strokes = _cut_pieces(strokes, half_width, lambda points: _split_at_end_pairs(points, endpoints))
    return _longest_first(_cut_long(strokes, max(sk.shape), half_width))


def _ahead(tip: _Tip, hubs: Dict[Pixel, np.ndarray]) -> Optional[Pixel]:
    """The hub of the farthest junction point ahead of a tip (within AHEAD_DEG of its
    direction); None if none lies ahead."""
    best, far = None, 0.0
    for cell, point in hubs.items():
        gap = point - tip.point
        dist = float(np.linalg.norm(gap))
        if far < dist and float(tip.outward @ gap) >= dist * math.cos(math.radians(AHEAD_DEG)):
            best, far = cell, dist
    return best


def _longest_first(strokes: List[Stroke]) -> List[Stroke]:
    return sorted(strokes, key=lambda st: -st.length)


def _cut_rings(strokes: List[Stroke], half_width: Optional[np.ndarray]) -> List[Stroke]:
    """The strokes, each closed one (last point its first) cut into 口's three strokes
    (:func:`_box_strokes`) where each of the three keeps a vertex pixel no other stroke has."""

    def split(ring: np.ndarray) -> List[np.ndarray]:
        return _box_strokes(ring) if len(ring) > 3 and np.array_equal(ring[0], ring[-1]) else [ring]

    return _cut_pieces(strokes, half_width, split)


def _each_own(pieces: List[np.ndarray], strokes: List[Stroke], i: int) -> bool:
    """Whether each piece of stroke ``i`` keeps a vertex pixel that no other piece and no other
    stroke has: cut so, no stroke is emitted twice."""
    cells = [_vertex_pixels(p) for p in pieces]
    others = set().union(*(_vertex_pixels(o.points) for j, o in enumerate(strokes) if j != i))
    return all(own - others - set().union(*cells[:k], *cells[k + 1 :]) for k, own in enumerate(cells))


def _cut_pieces(
    strokes: List[Stroke], half_width: Optional[np.ndarray], split: Callable[[np.ndarray], List[np.ndarray]]
) -> List[Stroke]:
    """The strokes, each cut into ``split``'s pieces of its points where each piece keeps a vertex
    pixel of its own; the pieces share the vertex they were cut at."""
    out = []
    for i, st in enumerate(strokes):
        pieces = split(st.points)
        if len(pieces) > 1 and _each_own(pieces, strokes, i):
            out.extend(Stroke(p, _width(p, half_width)) for p in pieces)
        else:
            out.append(st)
    return out


def _cut_long(strokes: List[Stroke], side: int, half_width: Optional[np.ndarray]) -> List[Stroke]:
    """The strokes, each longer than LONG_STROKE_SIDES of the canvas ``side`` cut at its sharpest
    turns (:func:`_split_at_turns`)."""
    limit = LONG_STROKE_SIDES * side
    return _cut_pieces(strokes, half_width, lambda points: _split_at_turns(points, limit))


def _split_at_end_pairs(points: np.ndarray, endpoints: np.ndarray) -> List[np.ndarray]:
    """An open polyline cut at its sharpest turn between two endpoint peaks that lie on it
    END_PAIR_GAP px of arc apart, where that turn is END_PAIR_TURN_DEG or more, and each piece
    again; else itself."""
    if len(points) < 3 or np.array_equal(points[0], points[-1]):
        return [points]
    arc = _arc(points)
    gaps = np.linalg.norm(points[:, None, :] - endpoints[None, :, :], axis=2)  # (vertices, peaks)
    nearest = np.argmin(gaps, axis=0)
    on = gaps[nearest, np.arange(len(endpoints))] <= END_PAIR_NEAR
    at = np.sort(arc[nearest[on]])
    at = at[(at >= MIN_PIECE_PX) & (at <= arc[-1] - MIN_PIECE_PX)]
    turn = _turns(points, arc)
    low, high = END_PAIR_GAP
    for a, b in itertools.pairwise(at):
        between = np.flatnonzero((arc >= a - 1.0) & (arc <= b + 1.0))
        if not low <= b - a <= high or len(between) == 0:
            continue
        i = int(between[np.argmax(turn[between])])
        if turn[i] >= END_PAIR_TURN_DEG and 0 < i < len(points) - 1:
            return _split_at_end_pairs(points[: i + 1], endpoints) + _split_at_end_pairs(points[i:], endpoints)
    return [points]


def _split_at_turns(points: np.ndarray, limit: float) -> List[np.ndarray]:
    """An open polyline longer than ``limit`` split at its sharpest turn of at least LONG_TURN_DEG
    (MIN_PIECE_PX or more from both ends), and each piece again; else itself."""
    arc = _arc(points)
    if arc[-1] <= limit or np.array_equal(points[0], points[-1]):
        return [points]
    turn = _turns(points, arc)
    turn[(arc < MIN_PIECE_PX) | (arc > arc[-1] - MIN_PIECE_PX)] = 0.0
    i = int(np.argmax(turn))
    if turn[i] < LONG_TURN_DEG:
        return [points]
    return _split_at_turns(points[: i + 1], limit) + _split_at_turns(points[i:], limit)


def _arc(points: np.ndarray) -> np.ndarray:
    """Each vertex's distance along the polyline from its first, px."""
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _turns(points: np.ndarray, arc: np.ndarray) -> np.ndarray:
    """Each vertex's turn, degrees: between the chord from the point TURN_SPAN_PX of arc before it
    and the chord to the point TURN_SPAN_PX after it (0 where either is empty: the ends)."""

    def at(length: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(length, arc, points[:, 0]), np.interp(length, arc, points[:, 1])], 1)

    into, out = points - at(arc - TURN_SPAN_PX), at(arc + TURN_SPAN_PX) - points
    norms = np.linalg.norm(into, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.einsum("ij,ij->i", into, out) / np.maximum(norms, 1e-12)
    return np.where(norms > 1e-12, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))), 0.0)


def _vertex_pixels(points: np.ndarray) -> Set[Tuple[int, int]]:
    return set(map(tuple, np.floor(points).astype(int).tolist()))


def _box_strokes(ring: np.ndarray) -> List[np.ndarray]:
    """A closed polyline (its last point its first) -> 口's three strokes along it, each from its
    start corner: top-left to bottom-left, top-left round the top-right to bottom-right,
    bottom-left to bottom-right. Itself where it is shorter than RING_MIN_PX or two of the
    corners are one point."""
    cycle = ring[:-1]
    n = len(cycle)
    if float(np.linalg.norm(np.diff(ring, axis=0), axis=1).sum()) < RING_MIN_PX:
        return [ring]
    x, y = cycle[:, 0], cycle[:, 1]
    tl, bl, br = int(np.argmin(x + y)), int(np.argmax(y - x)), int(np.argmax(x + y))
    if len({tl, bl, br}) < 3:
        return [ring]

    def piece(a: int, b: int, other: int) -> np.ndarray:
        """The arc from corner a to corner b that does not pass the third corner."""
        if 0 < (other - a) % n < (b - a) % n:  # the forward arc a -> b passes it: go backwards
            a, b, backwards = b, a, True
        else:
            backwards = False
        arc = cycle[a : b + 1] if a <= b else np.concatenate([cycle[a:], cycle[: b + 1]])
        return arc[::-1] if backwards else arc

    return [piece(tl, bl, br), piece(tl, br, bl), piece(bl, br, tl)]


def _outside_footprints(strokes: List[Stroke], ink: Optional[np.ndarray] = None) -> List[Stroke]:
    """The strokes (longest first) without those lying wholly inside a longer kept stroke's
    footprint (FOOTPRINT of its half widths, at least COVER_PX) and, with ``ink``, those that are
    a longer kept stroke's other edge (:func:`_runs_along`)."""
    kept: List[Tuple[Stroke, float, np.ndarray, np.ndarray]] = []  # each with its reach and box
    for st in strokes:
        lo, hi = st.points.min(0), st.points.max(0)
        inside = any(_near(st, lo, hi, k, k_lo, k_hi, reach) is not None for k, reach, k_lo, k_hi in kept)
        if not inside and PARALLEL_FOOTPRINT > FOOTPRINT and ink is not None:
            inside = any(_runs_along(st, k, lo, hi, k_lo, k_hi, ink) for k, _, k_lo, k_hi in kept)
        if not inside:
            reach = max(FOOTPRINT * st.width / 2, COVER_PX)
            kept.append((st, reach, lo, hi))
    return [k for k, *_ in kept]


def _runs_along(
    st: Stroke, k: Stroke, lo: np.ndarray, hi: np.ndarray, k_lo: np.ndarray, k_hi: np.ndarray, ink: np.ndarray
) -> bool:
    """Whether ``st`` is the other edge of the longer ``k``'s ink (PARALLEL_FOOTPRINT): near it,
    along it, and with ink all the way across to it from nearly every point."""
    nearest = _near(st, lo, hi, k, k_lo, k_hi, max(PARALLEL_FOOTPRINT * k.width / 2, COVER_PX))
    if nearest is None:
        return False
    chord = st.points[-1] - st.points[0]
    span = nearest[-1] - nearest[0]  # the part of k that st runs beside
    n1, n2 = np.linalg.norm(chord), np.linalg.norm(span)
    if n1 < 2 * COVER_PX or n2 < n1 / 2 or abs(float(chord @ span)) < n1 * n2 * math.cos(math.radians(PARALLEL_DEG)):
        return False
    t = np.linspace(0, 1, 7)[None, :, None]  # 7 samples across, from each point to k
    across = np.floor(st.points[:, None, :] * (1 - t) + nearest[:, None, :] * t).astype(int)
    h, w = ink.shape
    inked = ink[np.clip(across[..., 1], 0, h - 1), np.clip(across[..., 0], 0, w - 1)].min(1) >= PARALLEL_INK
    return bool(inked.mean() >= 0.9)


def _near(
    st: Stroke, lo: np.ndarray, hi: np.ndarray, k: Stroke, k_lo: np.ndarray, k_hi: np.ndarray, reach: float
) -> Optional[np.ndarray]:
    """Each point of ``st``'s nearest point on ``k`` where all of ``st`` (bounding box ``lo``,
    ``hi``) lies within ``reach`` of ``k`` (box ``k_lo``, ``k_hi``); None where it does not."""
    if not ((lo >= k_lo - reach).all() and (hi <= k_hi + reach).all()):  # the box first: most pairs are far apart
        return None
    nearest = _nearest_points(st.points, k.points)
    return nearest if np.linalg.norm(st.points - nearest, axis=1).max() <= reach else None


def _nearest_points(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Each point's nearest point on the polyline."""
    a = polyline[:-1] if len(polyline) > 1 else polyline
    b = polyline[1:] if len(polyline) > 1 else polyline
    c, ab = points[:, None, :], (b - a)[None]
    t = np.clip(((c - a[None]) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    projected = a[None] + t[..., None] * ab
    best = np.linalg.norm(c - projected, axis=-1).argmin(1)
    return projected[np.arange(len(points)), best]


def _distances(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Each point's distance to the polyline."""
    return np.linalg.norm(points - _nearest_points(points, polyline), axis=1)


def _inward(end: Pixel, cells: Set[Pixel], steps: int) -> List[Pixel]:
    """The skeleton path from an end pixel inwards, up to ``steps`` pixels or a branch."""
    path, prev = [end], None
    while len(path) <= steps:
        nxt = [q for q in neighbours(path[-1], cells) if q != prev and q not in path]
        if len(nxt) != 1:
            break
        prev = path[-1]
        path.append(nxt[0])
    return path


def _bridged(
    sk: np.ndarray,
    cells: Set[Pixel],
    endpoints: np.ndarray,
    tangent: Optional[np.ndarray],
    half_width: np.ndarray,
    ink: np.ndarray,
) -> np.ndarray:
    """The skeleton with a straight bridge from each unmarked end to the skeleton it points at."""
    h, w = sk.shape
    out = sk.astype(np.uint8)  # OpenCV draws the bridges on it
    for end in [p for p in cells if len(neighbours(p, cells)) == 1]:
        centre = np.array([end[1] + 0.5, end[0] + 0.5])
        if _marked(centre, endpoints, END_NEAR):
            continue  # the model says a stroke ends here
        reach = max(2.0, BRIDGE * float(half_width[end]))
        inward = _inward(end, cells, int(reach) + DIRECTION_PIXELS + 2)  # its own pixels: never a target
        if len(inward) < 2:
            continue
        own, direction = set(inward), _end_direction(_xy(inward[: DIRECTION_PIXELS + 1]), True, tangent)
        for t in np.arange(1.0, reach + 0.25, 0.5):
            x, y = centre + t * direction
            px, py = math.floor(x), math.floor(y)
            if not (0 <= px < w and 0 <= py < h) or ink[py, px] < 0.5:
                break
            hits = [
                (py + dy, px + dx)
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                if (py + dy, px + dx) in cells and (py + dy, px + dx) not in own
            ]
            if hits:
                target = min(hits, key=lambda q: _d2(q, end))
                cv2.line(out, (end[1], end[0]), (target[1], target[0]), 1, 1)
                break
    return out.astype(bool)


def _marked(point: np.ndarray, endpoints: np.ndarray, within: float) -> bool:
    """Whether an endpoint peak lies within ``within`` px of ``point``: the model says a stroke
    ends there."""
    return bool(len(endpoints)) and float(np.min(np.linalg.norm(endpoints - point, axis=1))) <= within


def _d2(a: Pixel, b: Pixel) -> int:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


def untraced(sk: np.ndarray, polylines: List[np.ndarray], within: float = COVER_PX) -> np.ndarray:
    """The pixels of ``sk`` farther than ``within`` from every polyline (bool (H, W))."""
    ys, xs = np.nonzero(sk)
    far = np.ones(len(ys), bool)
    centres = np.stack([xs + 0.5, ys + 0.5], 1)
    for p in polylines:
        if not len(p):
            continue
        todo = np.nonzero(far)[0]
        if not len(todo):
            break
        far[todo[_distances(centres[todo], p) <= within + 1e-9]] = False
    out = np.zeros(sk.shape, bool)
    out[ys[far], xs[far]] = True
    return out


def _cover_rest(sk: np.ndarray, cells: Set[Pixel], polylines: List[np.ndarray]) -> List[np.ndarray]:
    """The polylines, with every skeleton pixel they leave untraced walked into paths: a path
    that starts or ends next to a polyline's end continues it, any other becomes a polyline of
    its own, reaching one pixel into the traced skeleton it branches from."""
    rest = untraced(sk, polylines)
    if not rest.any():
        return polylines
    traced = cells - pixels(rest)
    polylines = list(polylines)
    for comp in components(rest):
        for path in walk_cover(comp):
            xy = _xy(path)
            for i, p in enumerate(polylines):
                if _touch(p[-1], xy[0]):
                    polylines[i] = np.concatenate([p, xy])
                    break
                if _touch(p[-1], xy[-1]):
                    polylines[i] = np.concatenate([p, xy[::-1]])
                    break
                if _touch(p[0], xy[-1]):
                    polylines[i] = np.concatenate([xy, p])
                    break
                if _touch(p[0], xy[0]):
                    polylines[i] = np.concatenate([xy[::-1], p])
                    break
            else:
                before = [q for q in neighbours(path[0], traced)][:1]
                after = [q for q in neighbours(path[-1], traced) if q not in before][:1]
                polylines.append(_xy(before + path + after))
    return polylines


def _touch(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a - b).max() <= 1.0 + 1e-9)


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

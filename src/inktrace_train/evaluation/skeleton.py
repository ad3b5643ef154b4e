"""One-pixel skeletons as pixel graphs: thinning, cleaning, and walks that cover every pixel.

The tracer (:mod:`inktrace_train.evaluation.tracing`) builds on these. Pixels are ``(y, x)``
tuples; neighbours follow m-adjacency (a 4-neighbour always, a diagonal neighbour only when no
pixel shares an edge with both), so a line pixel of a thinned skeleton has two neighbours, an end
one and only a branching pixel three or more.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Set, Tuple

import cv2
import numpy as np

Pixel = Tuple[int, int]

SPUR_PX = 2  # branches of at most this many pixels off a line are noise of thinning: pruned
SPECK_PX = 2  # skeleton pieces of at most this many pixels are specks: dropped

_RING = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # dy, dx: N, NE, E, ... clockwise
_FOUR = [(-1, 0), (0, 1), (1, 0), (0, -1)]
_DIAGONAL = [(-1, -1), (-1, 1), (1, 1), (1, -1)]


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


def neighbours(p: Pixel, cells: Set[Pixel]) -> List[Pixel]:
    """The m-adjacent neighbours of ``p`` among ``cells``: 4-neighbours first."""
    y, x = p
    out = [(y + dy, x + dx) for dy, dx in _FOUR if (y + dy, x + dx) in cells]
    for dy, dx in _DIAGONAL:
        q = (y + dy, x + dx)
        if q in cells and (y + dy, x) not in cells and (y, x + dx) not in cells:
            out.append(q)
    return out


def pixels(mask: np.ndarray) -> Set[Pixel]:
    ys, xs = np.nonzero(mask)
    return set(zip(ys.tolist(), xs.tolist(), strict=True))


def components(mask: np.ndarray) -> List[List[Pixel]]:
    """The 8-connected components of a bool mask, each a list of pixels, in label order."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return []
    w = mask.shape[1]
    order = np.argsort(labels, axis=None, kind="stable")
    bounds = np.searchsorted(labels.ravel()[order], np.arange(1, n + 1))
    out = []
    for lab in range(1, n):
        idx = order[bounds[lab - 1] : bounds[lab]]
        out.append(list(zip((idx // w).tolist(), (idx % w).tolist(), strict=True)))
    return out


def clean(skeleton: np.ndarray) -> np.ndarray:
    """A thinned skeleton without its specks (pieces of <= SPECK_PX pixels) and spurs (end
    branches of <= SPUR_PX pixels off a branching pixel): what thinning leaves of a blot or a
    bump on a stroke's side. The tracer covers every pixel that remains."""
    sk = skeleton.copy()
    cells = pixels(sk)
    spurs: List[Pixel] = []
    for p in cells:
        if len(neighbours(p, cells)) != 1:
            continue
        run, prev, cur = [p], None, p
        while len(run) <= SPUR_PX:
            nxt = [q for q in neighbours(cur, cells) if q != prev]
            if len(nxt) != 1:
                break
            prev, cur = cur, nxt[0]
            if len(neighbours(cur, cells)) >= 3:  # reached a branching pixel: ``run`` is a spur
                spurs += run
                break
            run.append(cur)
    for y, x in spurs:
        sk[y, x] = False
    for comp in components(sk):
        if len(comp) <= SPECK_PX:
            for y, x in comp:
                sk[y, x] = False
    return sk


def branch_pixels(cells: Set[Pixel]) -> Set[Pixel]:
    """Pixels with three or more m-adjacent neighbours."""
    return {p for p in cells if len(neighbours(p, cells)) >= 3}


def junctions_from_pixels(skeleton: np.ndarray) -> np.ndarray:
    """Junction points of a thinned skeleton, the classical way: pixels with three or more
    neighbours, one point (the centroid) per 8-connected cluster of them. (K, 2) x, y."""
    branch = np.zeros(skeleton.shape, bool)
    for y, x in branch_pixels(pixels(skeleton)):
        branch[y, x] = True
    points = [np.mean([(x + 0.5, y + 0.5) for y, x in comp], axis=0) for comp in components(branch)]
    return np.array(points).reshape(-1, 2)


def walk_cover(cells: Iterable[Pixel]) -> List[List[Pixel]]:
    """Paths that together hold every pixel of ``cells`` exactly once.

    Each path starts at a pixel with the fewest neighbours left (an end, where there is one)
    and steps to an unvisited m-adjacent neighbour, preferring the one with the fewest onward
    choices, until it is stuck. A simple line or loop is one path; a closed loop's path ends
    next to its start."""
    left = set(cells)
    paths = []
    while left:
        start = min(left, key=lambda c: (len(neighbours(c, left)), c))
        path = [start]
        left.discard(start)
        while True:
            options = neighbours(path[-1], left)
            if not options:
                break
            nxt = min(options, key=lambda c: (len(neighbours(c, left)), c))
            path.append(nxt)
            left.discard(nxt)
        paths.append(path)
    return paths


def is_loop(path: List[Pixel], cells: Set[Pixel]) -> bool:
    """Whether a path of three or more pixels closes on itself (its ends are neighbours)."""
    return len(path) >= 3 and path[0] in neighbours(path[-1], cells)


def shortest_path(start: Pixel, goals: Set[Pixel], cells: Set[Pixel]) -> List[Pixel]:
    """A shortest 8-connected path inside ``cells`` from start to the nearest of ``goals``."""
    parent: Dict[Pixel, Pixel] = {start: start}
    frontier, reached = [start], start if start in goals else None
    while frontier and reached is None:
        nxt = []
        for y, x in frontier:
            for dy, dx in _FOUR + _DIAGONAL:  # straight steps first: no zigzag where a line runs
                q = (y + dy, x + dx)
                if q in cells and q not in parent:
                    parent[q] = (y, x)
                    nxt.append(q)
                    if q in goals and reached is None:
                        reached = q
        frontier = nxt
    if reached is None:
        return [start]
    path = [reached]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]

"""Finding the glyphs on a page: connected ink grouped into characters by size and spacing.

The rule:

1. Pieces: 8-connected components of the ink at coverage >= PIECE_LEVEL; pieces of fewer than
   SPECK_AREA pixels are noise and dropped.
2. Grouping: a piece or group A joins a neighbour B (the nearest first, the largest groups
   first, repeated until nothing changes; at a gap share of 0, then 0.1, then GAP_FRACTION, so
   that a character is whole before it is measured against its neighbour) when
   - the gap between their boxes (the larger of the horizontal and vertical gap) is at most
     the gap share of the larger box's longer side, and
   - the joint box's longer side is at most GROW_LIMIT times the larger box's longer side, and
   - the boxes overlap or touch, or the smaller is under SMALL_SHARE of the larger's size (a dot,
     a tick), or the joint box is no more elongated than ASPECT_LIMIT or than the more elongated
     of the two (long side over short side).
   The first keeps a character's strokes and dots together; the second stops a character from
   swallowing its neighbour in a row or a column, since two characters side by side are about
   twice as long as one; the third stops it for a smaller neighbour (a 57 px character beside a
   92 px one is only 1.6 times as long as the larger, but a box 1.6 times as wide as high): the
   parts of a character make a squarer box as they join, two characters a longer one.
3. Groups whose longer side is under MIN_GLYPH_PX are dropped (specks that clumped together).
4. Reading order: the glyphs are clustered into rows (by vertical overlap of their centres) and
   into columns (horizontally); the layout with fewer lines wins (rows on a tie). Rows read top
   to bottom, left to right; columns right to left, top to bottom (vertical CJK text).

Limits (what this rule cannot tell apart): characters closer than GAP_FRACTION of their size
join when the joint box stays within GROW_LIMIT and about square (dense CJK text with no
spacing, a punctuation mark next to a character); a character whose parts lie farther apart than
GAP_FRACTION of its size splits; touching characters are one piece and stay one glyph; ink that
runs across the page (ruled lines, frames) is one huge glyph. Text on lines that bend or lean is
still found; only its reading order assumes straight rows or columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

PIECE_LEVEL = 128  # uint8 ink coverage (half) at which pixels form pieces; fainter ink is fringe
SPECK_AREA = 3  # px: pieces smaller than this are noise
GAP_FRACTION = 0.25  # a piece joins a neighbour closer than this share of the larger one's size
GAP_STEPS = (0.0, 0.1)  # smaller shares tried first, so a character is whole before it meets the next
GROW_LIMIT = 1.75  # ... unless the joint box would be longer than this times the larger one
ASPECT_LIMIT = 1.5  # ... or, apart and both of a character's size, more elongated than this and than both
SMALL_SHARE = 0.35  # a box under this share of the larger one's size is a dot or a tick: shape not checked
MIN_GLYPH_PX = 6  # px: groups with a shorter longer side are dropped


@dataclass
class Region:
    """One glyph found on a page: ``box`` (x0, y0, x1, y1) in pixel edges (x1, y1 exclusive),
    ``pieces`` its component labels in the page's label image."""

    box: Tuple[int, int, int, int]
    pieces: np.ndarray


def _side(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])


def _aspect(boxes: np.ndarray) -> np.ndarray:
    """Long side over short side (a side of at least 1 px)."""
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return np.maximum(w, h) / np.maximum(np.minimum(w, h), 1)


def _join_candidates(boxes: np.ndarray, alive: np.ndarray, i: int, fraction: float) -> np.ndarray:
    """Indices of live boxes that box i may join (the rules of step 2), nearest first."""
    b = boxes[i]
    gap = np.maximum(
        np.maximum(boxes[:, 0] - b[2], b[0] - boxes[:, 2]), np.maximum(boxes[:, 1] - b[3], b[1] - boxes[:, 3])
    ).clip(min=0)
    larger, smaller = np.maximum(_side(boxes), _side(b)), np.minimum(_side(boxes), _side(b))
    joint_box = np.stack(
        [
            np.minimum(boxes[:, 0], b[0]),
            np.minimum(boxes[:, 1], b[1]),
            np.maximum(boxes[:, 2], b[2]),
            np.maximum(boxes[:, 3], b[3]),
        ],
        axis=1,
    )
    squarer = _aspect(joint_box) <= np.maximum(ASPECT_LIMIT, np.maximum(_aspect(boxes), _aspect(b)))
    shape_ok = (gap <= 0) | (smaller < SMALL_SHARE * larger) | squarer
    ok = alive & (gap <= fraction * larger) & (_side(joint_box) <= GROW_LIMIT * larger) & shape_ok
    ok[i] = False
    found = np.nonzero(ok)[0]
    return found[np.argsort(gap[found], kind="stable")]


def group(boxes: np.ndarray) -> List[List[int]]:
    """Pieces (n, 4) boxes x0, y0, x1, y1 -> lists of piece indices, one per group (rule 2)."""
    boxes = boxes.astype(np.float64).copy()
    members = [[i] for i in range(len(boxes))]
    alive = np.ones(len(boxes), bool)
    for fraction in (*GAP_STEPS, GAP_FRACTION):
        changed = True
        while changed:
            changed = _join_pass(boxes, alive, members, fraction)
    return [members[i] for i in np.nonzero(alive)[0]]


def _join_pass(boxes: np.ndarray, alive: np.ndarray, members: List[List[int]], fraction: float) -> bool:
    """One pass of joins at one gap share, largest boxes first; True if anything joined."""
    changed = False
    for i in np.argsort(-_side(boxes), kind="stable"):
        if not alive[i]:
            continue
        for j in _join_candidates(boxes, alive, i, fraction):
            # The box of i grew with each join: check j again against it.
            if j not in _join_candidates(boxes, alive, i, fraction):
                continue
            boxes[i, :2] = np.minimum(boxes[i, :2], boxes[j, :2])
            boxes[i, 2:] = np.maximum(boxes[i, 2:], boxes[j, 2:])
            members[i] += members[j]
            alive[j] = False
            changed = True
    return changed


def _lines(centres: np.ndarray, highs: np.ndarray) -> List[List[int]]:
    """Glyphs clustered into lines along one axis: a glyph whose centre lies within the current
    line's extent joins it."""
    lines: List[List[int]] = []
    end = -np.inf
    for i in np.argsort(centres, kind="stable"):
        if lines and centres[i] <= end:
            lines[-1].append(int(i))
            end = max(end, highs[i])
        else:
            lines.append([int(i)])
            end = highs[i]
    return lines


def reading_order(boxes: List[Tuple[int, int, int, int]]) -> List[int]:
    """Indices of the boxes in reading order (rule 4)."""
    if not boxes:
        return []
    b = np.asarray(boxes, np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    rows = _lines(cy, b[:, 3])
    columns = _lines(cx, b[:, 2])
    if len(columns) < len(rows):
        return [i for col in reversed(columns) for i in sorted(col, key=lambda k: cy[k])]
    return [i for row in rows for i in sorted(row, key=lambda k: cx[k])]


def find_glyphs(ink: np.ndarray) -> Tuple[np.ndarray, List[Region]]:
    """uint8 ink coverage (H, W) -> (int32 label image of the pieces, glyphs in reading order)."""
    binary = (ink >= PIECE_LEVEL).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=cv2.CV_32S)
    del binary
    keep = np.nonzero(stats[1:, cv2.CC_STAT_AREA] >= SPECK_AREA)[0] + 1  # label 0 is the paper
    x, y = stats[keep, cv2.CC_STAT_LEFT], stats[keep, cv2.CC_STAT_TOP]
    boxes = np.stack([x, y, x + stats[keep, cv2.CC_STAT_WIDTH], y + stats[keep, cv2.CC_STAT_HEIGHT]], 1)
    regions = []
    for members in group(boxes):
        box = boxes[members]
        x0, y0 = box[:, :2].min(0)
        x1, y1 = box[:, 2:].max(0)
        if max(x1 - x0, y1 - y0) >= MIN_GLYPH_PX:
            regions.append(Region(box=(int(x0), int(y0), int(x1), int(y1)), pieces=keep[members]))
    order = reading_order([r.box for r in regions])
    return labels, [regions[i] for i in order]


def glyph_ink(ink: np.ndarray, labels: np.ndarray, region: Region, fringe: int = 2) -> Tuple[np.ndarray, int, int]:
    """The ink of one glyph alone, (crop, x0, y0): its box grown by ``fringe`` px, holding only
    its own pieces and their anti-aliased fringe (fainter than PIECE_LEVEL), not a neighbour's."""
    h, w = ink.shape
    x0, y0, x1, y1 = region.box
    x0, y0, x1, y1 = max(0, x0 - fringe), max(0, y0 - fringe), min(w, x1 + fringe), min(h, y1 + fringe)
    own = np.isin(labels[y0:y1, x0:x1], region.pieces).astype(np.uint8)
    own = cv2.dilate(own, np.ones((2 * fringe + 1, 2 * fringe + 1), np.uint8))
    return ink[y0:y1, x0:x1] * own, x0, y0

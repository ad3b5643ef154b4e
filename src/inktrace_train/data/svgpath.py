"""SVG path data (the ``d`` attribute) to flattened polylines.

KanjiVG stroke paths use ``M m C c S s`` only, but the parser also accepts
``L l H h V v Z z Q q T t`` so that a future data release cannot silently break
it. Every segment is converted to a cubic Bezier (lines and quadratics are exact
as cubics) and all cubics of a subpath are flattened in one vectorised pass.
Elliptical arcs (``A``) are rejected with ``ValueError``: approximating them
badly would corrupt training data without anyone noticing.
"""

from __future__ import annotations

import re
from typing import List, Tuple

import numpy as np

# A number is an optional sign, then digits with an optional fraction, or a bare
# fraction, then an optional exponent. "4.5.6" therefore reads as 4.5 and .6, and
# "3-4" as 3 and -4, exactly as SVG specifies.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtZzAa])|({_NUMBER})|([\s,]+)|(.)")

# Coordinates per repetition of each command.
MAX_POINTS = 1_000_000  # a flattened path with more points is refused (huge coordinates would exhaust memory)

_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "Z": 0}


def tokenize(d: str) -> List[Tuple[str, List[float]]]:
    """Split path data into (command, numbers) groups.

    Args:
        d: the SVG ``d`` attribute.

    Returns:
        One ``(letter, numbers)`` pair per command letter, in order; the numbers
        are every argument up to the next letter (implicit repeats included).

    Raises:
        ValueError: on a character that is neither a command, a number nor a
            separator, or on numbers before the first command.
    """
    groups: List[Tuple[str, List[float]]] = []
    for match in _TOKEN.finditer(d):
        letter, number, _sep, junk = match.groups()
        if letter:
            groups.append((letter, []))
        elif number:
            if not groups:
                raise ValueError(f"path data starts with a number: {d[:40]!r}")
            groups[-1][1].append(float(number))
        elif junk:
            raise ValueError(f"unexpected character {junk!r} in path data {d[:40]!r}")
    return groups


def _line_cubic(p0: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """A straight line as a cubic with controls at thirds (flattens evenly)."""
    return np.stack([p0, p0 + (p3 - p0) / 3.0, p0 + 2.0 * (p3 - p0) / 3.0, p3])


def _quad_cubic(p0: np.ndarray, q: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Degree elevation of a quadratic Bezier (exact)."""
    return np.stack([p0, p0 + 2.0 / 3.0 * (q - p0), p3 + 2.0 / 3.0 * (q - p3), p3])


class _PathState:
    """Pen position, subpath start and the last control points for reflection."""

    def __init__(self) -> None:
        self.pen = np.zeros(2)
        self.start = np.zeros(2)
        self.last_cubic_ctrl: np.ndarray | None = None  # second control of the previous C/S
        self.last_quad_ctrl: np.ndarray | None = None  # control of the previous Q/T
        self.subpaths: List[List[np.ndarray]] = []  # per subpath: list of (4,2) cubics
        self.open_points: List[np.ndarray] = []  # subpath starts, kept for lone moves

    def move(self, p: np.ndarray) -> None:
        self.pen = p
        self.start = p
        self.subpaths.append([])
        self.open_points.append(p)

    def add(self, cubic: np.ndarray) -> None:
        if not self.subpaths:  # drawing before any moveto: start at the origin
            self.move(np.zeros(2))
        self.subpaths[-1].append(cubic)
        self.pen = cubic[3]


def _apply(state: _PathState, cmd: str, args: np.ndarray) -> None:
    """Apply one repetition of an upper-cased command with absolute arguments."""
    pen = state.pen
    cubic_ctrl, quad_ctrl = None, None
    if cmd == "M":
        state.move(args)
    elif cmd == "L":
        state.add(_line_cubic(pen, args))
    elif cmd == "C":
        state.add(np.stack([pen, args[0:2], args[2:4], args[4:6]]))
        cubic_ctrl = args[2:4]
    elif cmd == "S":
        # The first control is the previous second control reflected about the pen,
        # or the pen itself when the previous command was not a cubic.
        c1 = 2 * pen - state.last_cubic_ctrl if state.last_cubic_ctrl is not None else pen
        state.add(np.stack([pen, c1, args[0:2], args[2:4]]))
        cubic_ctrl = args[0:2]
    elif cmd == "Q":
        state.add(_quad_cubic(pen, args[0:2], args[2:4]))
        quad_ctrl = args[0:2]
    elif cmd == "T":
        q = 2 * pen - state.last_quad_ctrl if state.last_quad_ctrl is not None else pen
        state.add(_quad_cubic(pen, q, args))
        quad_ctrl = q
    elif cmd == "Z":
        state.add(_line_cubic(pen, state.start))
    state.last_cubic_ctrl, state.last_quad_ctrl = cubic_ctrl, quad_ctrl


def _absolute(cmd: str, rel: bool, args: List[float], pen: np.ndarray) -> np.ndarray:
    """Absolute coordinates of one repetition; H and V become L."""
    a = np.asarray(args, dtype=np.float64)
    if cmd == "H":
        return np.array([a[0] + (pen[0] if rel else 0.0), pen[1]])
    if cmd == "V":
        return np.array([pen[0], a[0] + (pen[1] if rel else 0.0)])
    if rel:
        a = a + np.tile(pen, len(a) // 2)
    return a


def parse_path(d: str) -> List[List[np.ndarray]]:
    """Parse path data into cubic segments, one list per subpath.

    Args:
        d: the SVG ``d`` attribute.

    Returns:
        For each subpath, a list of (4, 2) float64 control-point arrays. A subpath
        that is only a moveto has a single degenerate cubic at that point.
    """
    state = _PathState()
    for letter, numbers in tokenize(d):
        cmd, rel = letter.upper(), letter.islower()
        if cmd == "A":
            raise ValueError("elliptical arcs (A/a) are not supported")
        arity = _ARITY[cmd]
        if arity == 0:
            _apply(state, cmd, np.empty(0))
            continue
        if not numbers or len(numbers) % arity:
            raise ValueError(f"command {letter!r} has {len(numbers)} numbers, not a multiple of {arity}")
        for k in range(0, len(numbers), arity):
            args = _absolute(cmd, rel, numbers[k : k + arity], state.pen)
            # Extra pairs after a moveto are implicit linetos (SVG 1.1, 8.3.2).
            effective = "L" if cmd == "M" and k > 0 else ("L" if cmd in "HV" else cmd)
            _apply(state, effective, args)
    for i, segments in enumerate(state.subpaths):
        if not segments:
            p = state.open_points[i]
            segments.append(np.stack([p, p, p, p]))
    return state.subpaths


def flatten_cubics(cubics: np.ndarray, tolerance: float) -> np.ndarray:
    """Sample a chain of cubic Beziers into one polyline, adaptively.

    A cubic split into n equal parameter steps deviates from its chords by at most
    M / (8 n^2), where M = 6 max|p0 - 2 p1 + p2|, |p1 - 2 p2 + p3| bounds the second
    derivative; n is chosen so that this bound is under ``tolerance``. Straight
    segments therefore cost one chord and tight curves get many.

    Args:
        cubics: (K, 4, 2) control points; segment k starts where k-1 ends.
        tolerance: the largest allowed distance between curve and polyline.

    Returns:
        (N, 2) float64 points, first and last control points included, with the
        shared joint between consecutive segments emitted once.

    Raises:
        ValueError: a non-finite control point, or more than MAX_POINTS points.
    """
    cubics = np.asarray(cubics, dtype=np.float64)
    if not np.all(np.isfinite(cubics)):
        raise ValueError("non-finite coordinate in path data")
    dd = np.stack(
        [cubics[:, 0] - 2 * cubics[:, 1] + cubics[:, 2], cubics[:, 1] - 2 * cubics[:, 2] + cubics[:, 3]], axis=1
    )
    bound = 6.0 * np.linalg.norm(dd, axis=2).max(axis=1)
    counts = np.maximum(1, np.ceil(np.sqrt(bound / (8.0 * tolerance))))
    if not np.isfinite(counts.sum()) or counts.sum() > MAX_POINTS:
        raise ValueError(f"path would flatten to more than {MAX_POINTS:,} points")
    counts = counts.astype(np.int64)
    seg = np.repeat(np.arange(len(cubics)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = ((np.arange(counts.sum()) - first) / np.repeat(counts, counts))[:, None]
    c = cubics[seg]
    u = 1.0 - t
    pts = (u**3) * c[:, 0] + 3 * (u * u * t) * c[:, 1] + 3 * (u * t * t) * c[:, 2] + (t**3) * c[:, 3]
    return np.concatenate([pts, cubics[-1, 3][None]], axis=0)


def path_to_polylines(d: str, tolerance: float = 0.05) -> List[np.ndarray]:
    """Parse and flatten path data: one float32 (N, 2) polyline per subpath.

    Args:
        d: the SVG ``d`` attribute.
        tolerance: flattening tolerance in path units.
    """
    return [flatten_cubics(np.stack(segs), tolerance).astype(np.float32) for segs in parse_path(d)]


def polyline_length(points: np.ndarray) -> float:
    """Total length of a polyline (used by tests and sanity checks)."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0


__all__ = ["flatten_cubics", "parse_path", "path_to_polylines", "polyline_length", "tokenize"]

"""SVG glyph files: one glyph per file, one stroke per ``<path>``, ``<polyline>`` or ``<line>``.

Strokes are centerlines (a filled outline would be read as the path around it). Every nested
``transform`` is applied, so coordinates come out in the root's user units; the root's
``viewBox`` (else its numeric ``width``/``height``) is the page fitted to the unit square.
Curves are flattened to within FLATTEN_FRACTION of the page's longer side (KanjiVG: 0.05 of
109 units, 0.03 px at 64x64). Strokes keep document order, except that ids ending in ``-sN``
(KanjiVG's stroke numbers) order them. Elliptical arcs are refused (see :mod:`..svgpath`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from inktrace_train.data.formats import RawGlyph, too_large, xml
from inktrace_train.data.svgpath import path_to_polylines

FLATTEN_FRACTION = 0.05 / 109.0  # flattening tolerance as a share of the page side (KanjiVG's 0.05 units)
STROKE_TAGS = ("path", "polyline", "line")
HIDDEN_TAGS = ("defs", "clipPath", "mask", "marker", "pattern", "symbol", "metadata", "title", "desc", "text")

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TRANSFORM = re.compile(r"\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)\s*,?")
_STROKE_NUMBER = re.compile(r"-s(\d+)$")
_ARITY = {"matrix": (6,), "translate": (1, 2), "scale": (1, 2), "rotate": (1, 3), "skewX": (1,), "skewY": (1,)}


def numbers(text: str) -> List[float]:
    return [float(n) for n in _NUMBER.findall(text)]


def parse_transform(text: str) -> np.ndarray:
    """A ``transform`` attribute as a 3x3 matrix (later functions apply first, as SVG says).

    Raises:
        ValueError: an unknown function, a wrong argument count, or left-over text.
    """
    m = np.eye(3)
    pos = 0
    for match in _TRANSFORM.finditer(text):
        if match.start() != pos:
            break
        pos = match.end()
        name, args = match.group(1), numbers(match.group(2))
        if len(args) not in _ARITY[name]:
            raise ValueError(f"transform {name}() takes {_ARITY[name]} numbers, got {len(args)}")
        m = m @ _matrix(name, args)
    if text[pos:].strip():
        raise ValueError(f"unreadable transform {text[:60]!r}")
    return m


def _matrix(name: str, a: List[float]) -> np.ndarray:
    if name == "matrix":
        return np.array([[a[0], a[2], a[4]], [a[1], a[3], a[5]], [0, 0, 1]])
    if name == "translate":
        return np.array([[1, 0, a[0]], [0, 1, a[1] if len(a) > 1 else 0.0], [0, 0, 1]])
    if name == "scale":
        return np.diag([a[0], a[1] if len(a) > 1 else a[0], 1.0])
    if name in ("skewX", "skewY"):
        t = math.tan(math.radians(a[0]))
        shear = np.eye(3)
        shear[(0, 1) if name == "skewX" else (1, 0)] = t
        return shear
    c, s = math.cos(math.radians(a[0])), math.sin(math.radians(a[0]))
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    if len(a) == 3:  # rotate about (cx, cy)
        return _matrix("translate", a[1:]) @ rot @ _matrix("translate", [-a[1], -a[2]])
    return rot


def page(root_attrib: dict) -> Optional[Tuple[float, float, float, float]]:
    """The root's viewBox, else (0, 0, width, height) when both are plain numbers (or px)."""
    if "viewBox" in root_attrib:
        box = numbers(root_attrib["viewBox"])
        if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"invalid viewBox {root_attrib['viewBox'][:60]!r}")
        return (box[0], box[1], box[2], box[3])
    size = [re.fullmatch(r"\s*([0-9.eE+-]+)\s*(px)?\s*", root_attrib.get(k, "")) for k in ("width", "height")]
    if all(size):
        w, h = (float(s.group(1)) for s in size)
        if math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0:
            return (0.0, 0.0, w, h)
    return None


def _element_strokes(tag: str, attrib: dict, tolerance: float) -> List[np.ndarray]:
    """Polylines of one stroke element in its own user units."""
    if tag == "path":
        d = attrib.get("d", "")
        return [p.astype(np.float64) for p in path_to_polylines(d, tolerance)] if d.strip() else []
    if tag == "line":
        v = []
        for k in ("x1", "y1", "x2", "y2"):
            value = attrib.get(k, "0") or "0"
            try:
                v.append(float(value))
            except ValueError:
                raise ValueError(f"<line {k}={value!r}>: a coordinate must be a plain number (no units)") from None
        return [np.array(v, np.float64).reshape(2, 2)]
    v = numbers(attrib.get("points", ""))
    if len(v) % 2:
        raise ValueError("polyline with an odd count of coordinates")
    return [np.array(v, np.float64).reshape(-1, 2)] if v else []


def _stroke_elements(root) -> Iterator[Tuple[str, dict, np.ndarray]]:
    """(tag, attributes, transform to root units) of every visible stroke element."""
    stack = [(root, np.eye(3), 0)]
    while stack:
        node, m, depth = stack.pop()
        if depth > xml.MAX_DEPTH:
            raise ValueError(f"elements nested deeper than {xml.MAX_DEPTH}")
        tag = xml.local(node.tag)
        if tag in HIDDEN_TAGS or node.get("display") == "none":
            continue
        if "transform" in node.attrib and node is not root:
            m = m @ parse_transform(node.get("transform"))
        if tag in STROKE_TAGS:
            yield tag, node.attrib, m
        stack.extend((child, m, depth + 1) for child in reversed(list(node)))


def read_strokes(root, tolerance: Optional[float] = None):
    """Strokes (float64, root user units), their ``kvg:type`` labels, and the page of an SVG root.

    Args:
        root: the parsed ``<svg>`` element.
        tolerance: flattening tolerance in root units; None: FLATTEN_FRACTION of the page side.
    """
    if xml.local(root.tag) != "svg":
        raise ValueError(f"root element is <{xml.local(root.tag)}>, not <svg>")
    box = page(root.attrib)
    if tolerance is None:
        tolerance = FLATTEN_FRACTION * (max(box[2], box[3]) if box else 100.0)
    entries, n_points = [], 0
    for position, (tag, attrib, m) in enumerate(_stroke_elements(root)):
        scale = float(np.linalg.norm(m[:2, :2], 2))  # largest stretch of the transform
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError("a transform that is not invertible")
        lines = _element_strokes(tag, attrib, tolerance / scale)
        if not np.array_equal(m, np.eye(3)):
            lines = [p @ m[:2, :2].T + m[:2, 2] for p in lines]
        number = _STROKE_NUMBER.search(attrib.get("id", ""))
        kind = next((v for k, v in attrib.items() if xml.local(k) == "type" and "kanjivg" in k), "")
        entries.append(((int(number.group(1)) if number else 10**6, position), lines, kind))
        n_points += sum(len(p) for p in lines)
        if too_large(n_points, len(entries)):  # stop reading early: the rest cannot make it usable
            raise ValueError(f"glyph too large (over {n_points:,} points in {len(entries):,} strokes)")
    entries.sort(key=lambda e: e[0])
    strokes = [p for _, lines, _ in entries for p in lines]
    kinds = [kind for _, lines, kind in entries for _ in lines]
    return strokes, kinds, box


def read(path: Path, name: str) -> Iterator[RawGlyph]:
    """The one glyph of an SVG file, keyed by its name."""
    strokes, _, box = read_strokes(xml.parse(path))
    yield RawGlyph(key=name, where=name, label="", strokes=strokes, canvas=box)

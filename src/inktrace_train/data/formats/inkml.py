"""InkML files (W3C Ink Markup Language; CROHME and many pen-input corpora).

Each ``<trace>`` is a stroke: a comma-separated list of points whose values follow the
channels its ``<traceFormat>`` declares (by the trace's ``contextRef``, else the file's first
trace format, else X Y). X and Y are used; T, pressure and any other channel are read past.
Values may carry InkML's qualifiers: ``!`` explicit, ``'`` first and ``"`` second difference,
``*`` repeat. One glyph per ``<traceGroup>`` that holds traces or ``<traceView>`` s itself
(nested groups are glyphs of their own: a CROHME file's symbols), keyed ``file#k`` (k counts
those groups in document order) and labelled by its ``<annotation type="truth">``; a file
without such groups is one glyph, keyed by its path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np

from inktrace_train.data.formats import RawGlyph, Skip, xml

XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_VALUE = re.compile(r"\s*([!'\"]?)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[TF*?])")
_PLAIN = re.compile(r"[\s,0-9eE.+-]*")  # a trace with nothing but numbers: the fast path


def _ref(value: Optional[str]) -> str:
    return (value or "").strip().lstrip("#")


def _children(node, tag: str) -> List:
    return [c for c in node if xml.local(c.tag) == tag]


def channels_of(trace_format) -> List[str]:
    """The regular channels' names, in order (intermittent ones are not in every point)."""
    return [c.get("name", "") for c in _children(trace_format, "channel")]


def _formats(root) -> Dict[str, List[str]]:
    """Channel lists by trace-format id and by context id; '' is the file's default."""
    found: Dict[str, List[str]] = {}
    for node, _ in xml.walk(root):
        tag = xml.local(node.tag)
        if tag == "traceFormat":
            found.setdefault("", channels_of(node))
            if node.get(XML_ID):
                found[node.get(XML_ID)] = channels_of(node)
    for node, _ in xml.walk(root):
        if xml.local(node.tag) == "context" and node.get(XML_ID):
            inner = _children(node, "traceFormat")
            ref = _ref(node.get("traceFormatRef"))
            if inner:
                found[node.get(XML_ID)] = channels_of(inner[0])
            elif ref in found:
                found[node.get(XML_ID)] = found[ref]
    found.setdefault("", ["X", "Y"])
    return found


def parse_points(text: str, channels: List[str]) -> np.ndarray:
    """The (N, 2) X, Y of a trace's text.

    Raises:
        ValueError: a missing channel, a point with too few values, or text that is not a value.
    """
    if "X" not in channels or "Y" not in channels:
        raise ValueError(f"trace format has no X and Y channels: {channels}")
    ix, iy, n = channels.index("X"), channels.index("Y"), len(channels)
    points = [p for p in text.split(",") if p.strip()]
    if _PLAIN.fullmatch(text):
        rows = [[float(v) for v in p.split()[:n]] for p in points]
        if any(len(r) < n for r in rows):
            raise ValueError(f"a point with fewer than {n} values")
        return np.array([[r[ix], r[iy]] for r in rows], np.float64).reshape(-1, 2)
    return _qualified(points, n, ix, iy)


def _qualified(points: List[str], n: int, ix: int, iy: int) -> np.ndarray:
    """Points whose values use InkML's difference qualifiers (the slow, general path)."""
    value, velocity, mode = [0.0] * n, [0.0] * n, ["!"] * n
    out = []
    for p in points:
        pos = 0
        for c in range(n):
            m = _VALUE.match(p, pos)
            if m is None:
                raise ValueError(f"unreadable point {p.strip()[:40]!r}")
            pos = m.end()
            qualifier, token = m.groups()
            mode[c] = qualifier or mode[c]
            if token == "?":
                raise ValueError("missing value '?' in a regular channel")
            step = velocity[c] if token == "*" else (1.0 if token == "T" else 0.0 if token == "F" else float(token))
            if mode[c] == "!":
                value[c] = value[c] if token == "*" else step
            elif mode[c] == "'":
                velocity[c] = step
                value[c] += step
            else:
                velocity[c] += step
                value[c] += velocity[c]
        out.append((value[ix], value[iy]))
    return np.array(out, np.float64).reshape(-1, 2)


def _truth(node) -> str:
    for a in _children(node, "annotation"):
        if a.get("type") == "truth":
            return (a.text or "").strip()
    return ""


def read(path: Path, name: str) -> Iterator[RawGlyph | Skip]:
    """The glyphs of an InkML file, and a Skip per glyph with an unreadable trace."""
    root = xml.parse(path)
    if xml.local(root.tag) != "ink":
        raise ValueError(f"root element is <{xml.local(root.tag)}>, not <ink>")
    formats = _formats(root)
    traces, groups = {}, []
    for node, _ in xml.walk(root):
        tag = xml.local(node.tag)
        if tag == "trace" and (node.get(XML_ID) or node.get("id")):
            traces[node.get(XML_ID) or node.get("id")] = node  # CROHME writes a plain id
        elif tag == "traceGroup" and any(xml.local(c.tag) in ("trace", "traceView") for c in node):
            groups.append(node)
    if groups:
        members = [(f"{name}#{k}", g, _truth(g)) for k, g in enumerate(groups)]
    else:
        members = [(name, root, _truth(root))]
    for key, node, label in members:
        try:
            strokes = [parse_points(t.text or "", _channels(t, formats)) for t in _traces(node, traces)]
        except ValueError as e:
            yield Skip(key, "unreadable trace", str(e))
            continue
        yield RawGlyph(key=key, where=key, label=label, strokes=strokes)


def _channels(trace, formats: Dict[str, List[str]]) -> List[str]:
    ref = _ref(trace.get("contextRef")) or _ref(trace.get("traceFormatRef"))
    if ref and ref not in formats:
        raise ValueError(f"trace refers to an unknown context or format {ref!r}")
    return formats[ref] if ref else formats[""]


def _traces(node, by_id: Dict[str, object]) -> List:
    """The traces of a glyph: its own, in order, with ``<traceView>`` references resolved."""
    if xml.local(node.tag) == "ink":
        return [n for n, _ in xml.walk(node) if xml.local(n.tag) == "trace"]
    out = []
    for child in node:
        tag = xml.local(child.tag)
        if tag == "trace":
            out.append(child)
        elif tag == "traceView":
            ref = _ref(child.get("traceDataRef"))
            if ref not in by_id:
                raise ValueError(f"traceView refers to an unknown trace {ref!r}")
            out.append(by_id[ref])
    return out

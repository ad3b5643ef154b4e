"""NDJSON files: one glyph per line, in Quick, Draw!'s simplified layout.

``{"strokes": [[[x0, x1, ...], [y0, y1, ...]], ...], "key": "...", "label": "..."}``; a third
array per stroke (Quick, Draw!'s raw times) is read past. Quick, Draw!'s own field names are
accepted too: ``drawing`` for ``strokes``, ``key_id`` for ``key``, ``word`` for ``label``. A
line's key splits it (so a drawing keeps its split whichever file it is in); without one,
``file:line``. The file is read line by line, so it may be any size; blank lines are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, List

import numpy as np

from inktrace_train.data.formats import CUT_SHORT, MAX_LINE_BYTES, RawGlyph, Skip


def parse_strokes(value: object) -> List[np.ndarray]:
    """``[[xs, ys(, ts)], ...]`` -> float64 (N, 2) arrays.

    Raises:
        ValueError: anything of another shape or type.
    """
    if not isinstance(value, list):
        raise ValueError(f"strokes must be a list, not {type(value).__name__}")
    out = []
    for stroke in value:
        if not isinstance(stroke, list) or len(stroke) not in (2, 3):
            raise ValueError("each stroke must be [xs, ys] (or [xs, ys, ts])")
        xs, ys = stroke[0], stroke[1]
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError("a stroke's xs and ys must be lists of equal length")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs + ys):
            raise ValueError("coordinates must be numbers")  # true and false are not 1 and 0
        try:
            out.append(np.array([xs, ys], np.float64).T.reshape(-1, 2))
        except OverflowError:
            raise ValueError("a coordinate too large for a float") from None
    return out


def parse_line(line: bytes, name: str, number: int) -> RawGlyph | Skip:
    where = f"{name}:{number}"
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError(f"a line must be a JSON object, not {type(record).__name__}")
        strokes = parse_strokes(record.get("strokes", record.get("drawing")))
        key = record.get("key", record.get("key_id"))
        label = record.get("label", record.get("word", ""))
        if key is not None and not isinstance(key, (str, int)):
            raise ValueError("key must be a string or an integer")
        if not isinstance(label, str):
            raise ValueError("label must be a string")
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return Skip(where, "unparseable line", str(e)[:200])
    return RawGlyph(key=where if key is None else str(key), where=where, label=label, strokes=strokes)


def read(path: Path, name: str) -> Iterator[RawGlyph | Skip]:
    """The glyphs of an NDJSON file, and a Skip per line that is not one."""
    with open(path, "rb") as f:
        number = 0
        while True:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES:
                while line and not line.endswith(b"\n"):  # read past the rest of the long line
                    line = f.readline(MAX_LINE_BYTES)
                yield Skip(f"{name}:{number}", "line too long", f"over {MAX_LINE_BYTES:,} bytes")
                continue
            if line.strip():
                item = parse_line(line, name, number)
                if isinstance(item, Skip) and not line.endswith(b"\n") and not _is_json(line):
                    # The last line, cut in two (a whole record without a final newline, as many
                    # editors save, is read as any line).
                    item = Skip(item.where, CUT_SHORT, f"its last line ends mid-record ({item.detail})")
                yield item


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False
    return True

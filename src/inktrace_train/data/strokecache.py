"""The parsed stroke files of one ``data.path`` as one verified ``.npz`` (:mod:`.npzcache`),
kept per file: a start-up re-parses only the files whose size or modification time changed,
and a file that turns bad keeps the glyphs cached from its last good version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from inktrace_train.data.formats import Skip

PARSER_VERSION = 1  # bump whenever reading, cleaning or normalising changes the cached arrays
ARRAYS = (
    "points",  # (P, 2) float32, unit coordinates
    "stroke_offsets",  # (S + 1,) stroke s is points[o[s]:o[s + 1]]
    "glyph_offsets",  # (G + 1,) glyph g is strokes o[g]:o[g + 1]
    "keys",  # (G,) what splits each glyph
    "wheres",  # (G,) where each glyph is, for messages
    "labels",  # (G,) what each glyph shows, or ""
    "files",  # (F,) path relative to data.path
    "file_size",  # (F,) bytes, when parsed
    "file_mtime",  # (F,) ns, when parsed
    "file_glyphs",  # (F + 1,) file f holds glyphs o[f]:o[f + 1]
    "file_skips",  # (F + 1,) and skips o[f]:o[f + 1]
    "skip_where",  # (K,)
    "skip_reason",  # (K,)
    "skip_detail",  # (K,)
)


@dataclass
class Glyph:
    key: str
    where: str
    label: str
    strokes: List[np.ndarray]  # float32 (N, 2) unit coordinates


@dataclass
class FileEntry:
    """One file as parsed: its stat when parsed, its glyphs and what was skipped in it."""

    name: str
    size: int
    mtime: int
    glyphs: List[Glyph] = field(default_factory=list)
    skips: List[Skip] = field(default_factory=list)


def _offsets(sizes: List[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


def _strings(values: List[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def to_arrays(entries: List[FileEntry]) -> Dict[str, np.ndarray]:
    """Flat arrays of the entries, in order (cheap to cache and to share with workers)."""
    glyphs = [g for e in entries for g in e.glyphs]
    skips = [s for e in entries for s in e.skips]
    strokes = [s for g in glyphs for s in g.strokes]
    return {
        "points": np.concatenate(strokes).astype(np.float32) if strokes else np.zeros((0, 2), np.float32),
        "stroke_offsets": _offsets([len(s) for s in strokes]),
        "glyph_offsets": _offsets([len(g.strokes) for g in glyphs]),
        "keys": _strings([g.key for g in glyphs]),
        "wheres": _strings([g.where for g in glyphs]),
        "labels": _strings([g.label for g in glyphs]),
        "files": _strings([e.name for e in entries]),
        "file_size": np.array([e.size for e in entries], np.int64),
        "file_mtime": np.array([e.mtime for e in entries], np.int64),
        "file_glyphs": _offsets([len(e.glyphs) for e in entries]),
        "file_skips": _offsets([len(e.skips) for e in entries]),
        "skip_where": _strings([s.where for s in skips]),
        "skip_reason": _strings([s.reason for s in skips]),
        "skip_detail": _strings([s.detail for s in skips]),
    }


def entries_of(a: Dict[str, np.ndarray]) -> Dict[str, FileEntry]:
    """The per-file entries of cached arrays, by file name."""
    out = {}
    so, go, fg, fs = a["stroke_offsets"], a["glyph_offsets"], a["file_glyphs"], a["file_skips"]
    for f, name in enumerate(a["files"].tolist()):
        glyphs = [
            Glyph(
                str(a["keys"][g]),
                str(a["wheres"][g]),
                str(a["labels"][g]),
                [a["points"][so[s] : so[s + 1]] for s in range(go[g], go[g + 1])],
            )
            for g in range(fg[f], fg[f + 1])
        ]
        skips = [
            Skip(str(a["skip_where"][k]), str(a["skip_reason"][k]), str(a["skip_detail"][k]))
            for k in range(fs[f], fs[f + 1])
        ]
        out[name] = FileEntry(name, int(a["file_size"][f]), int(a["file_mtime"][f]), glyphs, skips)
    return out

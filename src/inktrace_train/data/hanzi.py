"""Brush ink from ``hanzi-writer-data`` (npm, version 2.0.1): 9,574 Chinese characters in a
Kaiti brush style, each stroke with its filled outline and its median (centerline).

Get it with ``npm pack hanzi-writer-data@2.0.1`` and point ``data.hanzi_dir`` at the
``.tgz`` (read in place) or at the folder it unpacks to. Each ``<char>.json`` holds
``strokes`` (one SVG outline path per stroke, 1024-unit box, y up with the top at 900) and
``medians`` (one polyline per stroke). Parsing every file takes about 30 s; the result is
cached as one verified ``.npz`` (:mod:`.npzcache`), keyed by the package version, the parser
version and the file list.

The split is KanjiVG's: by codepoint, with the same hash, so a character held out of one
source is held out of the other (``data=mixed`` trains on both without leaking test glyphs).

Data licence: Arphic Public License (the font the outlines come from); the data is derived
from the Make Me a Hanzi project. tests/data/hanzi holds a small sample with the licence.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tarfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from inktrace_train.data import brush, npzcache
from inktrace_train.data.brush import BrushGlyph
from inktrace_train.data.glyphs import DataError, split_members
from inktrace_train.data.svgpath import path_to_polylines

log = logging.getLogger(__name__)

PARSER_VERSION = 1  # bump whenever parsing changes the cached arrays
BOX = 1024.0  # the data's em box, units; unit coordinates = units / BOX
TOP = 900.0  # y of the box's top edge in the data's y-up coordinates
FLATTEN_TOLERANCE = 1.0  # units an outline polygon may stray from its curves (0.06 px at 64x64)
FETCH = "npm pack hanzi-writer-data@2.0.1"


def _folder_files(source: Path) -> List[Path]:
    return [p for p in sorted(source.glob("*.json")) if p.name != "package.json"]


def _files(source: Path) -> Iterator[Tuple[str, bytes]]:
    """(character, file bytes) of every character file in a folder or a packed ``.tgz``."""
    if source.is_file():
        with tarfile.open(source) as tar:
            for member in tar:
                name = os.path.basename(member.name)
                if member.isfile() and name.endswith(".json") and name != "package.json":
                    yield name[: -len(".json")], tar.extractfile(member).read()
    else:
        for path in _folder_files(source):
            yield path.stem, path.read_bytes()


def _unit(points: np.ndarray) -> np.ndarray:
    """Data units (y up) -> unit coordinates (y down)."""
    return np.stack([points[:, 0] / BOX, (TOP - points[:, 1]) / BOX], axis=1).astype(np.float32)


def parse_character(text: bytes) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """(medians, outlines) of one character file, unit coordinates, one of each per stroke."""
    data = json.loads(text)
    outlines = [_unit(path_to_polylines(d, FLATTEN_TOLERANCE)[0].astype(np.float64)) for d in data["strokes"]]
    medians = [_unit(np.asarray(m, np.float64).reshape(-1, 2)) for m in data["medians"]]
    if len(outlines) != len(medians) or not medians:
        raise ValueError(f"{len(outlines)} outlines but {len(medians)} medians")
    return medians, outlines


def parse(source: Path) -> Dict[str, np.ndarray]:
    """Parse every character of a folder or ``.tgz``; unreadable files are skipped with a warning."""
    glyphs: List[BrushGlyph] = []
    names: List[str] = []
    for char, text in _files(source):
        try:
            medians, outlines = parse_character(text)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("skipping %s in %s: %s", char, source, exc)
            continue
        glyphs.append(BrushGlyph(medians, outlines))
        names.append(f"{ord(char[0]):05x}")
    if not names:
        raise DataError(f"data.hanzi_dir={source}: no hanzi-writer-data character files there (get them: {FETCH})")
    return brush.pack(glyphs, names)


def _key(source: Path) -> Dict[str, object]:
    listing = "\n".join(p.name for p in _folder_files(source)) if source.is_dir() else ""
    stat = source.stat()
    return {
        "parser_version": PARSER_VERSION,
        "source": str(source.resolve()),
        "files_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "size": stat.st_size if source.is_file() else 0,
        "mtime": int(stat.st_mtime) if source.is_file() else 0,
    }


def load(source: str | os.PathLike, cache_dir: Optional[str | os.PathLike] = None) -> Dict[str, np.ndarray]:
    """The parsed arrays, from this process's memo, the cache or a fresh parse."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data.hanzi_dir={source}: no such file or folder (get the data: {FETCH})")
    folder = Path(cache_dir) if cache_dir is not None else npzcache.default_dir()
    cache = folder / f"hanzi-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}-parser{PARSER_VERSION}.npz"

    def build() -> Dict[str, np.ndarray]:
        log.info("parsing hanzi-writer-data in %s (about 30 s, once)", path)
        return parse(path)

    return npzcache.load_or_build(cache, brush.ARRAYS, _key(path), build, log, "hanzi")


class HanziStrokes:
    """One split of hanzi-writer-data characters as :class:`BrushGlyph` s.

    Args:
        split: "train", "val" or "test" (by codepoint, as KanjiVG).
        val_fraction, test_fraction: shares of codepoints held out.
        source: the ``.tgz`` from ``npm pack hanzi-writer-data@2.0.1`` or its unpacked folder.
        cache_dir: cache folder; None means ``$XDG_CACHE_HOME/inktrace_train``.
    """

    def __init__(
        self, split: str, val_fraction: float, test_fraction: float, source: str, cache_dir: Optional[str] = None
    ) -> None:
        self._a = load(source, cache_dir)
        names = self._a["names"].tolist()
        self._glyphs = split_members(names, names, split, val_fraction, test_fraction)
        if len(self._glyphs) == 0:
            raise DataError(f"hanzi split {split!r} of {source} is empty ({len(names)} characters in all)")

    def __len__(self) -> int:
        return len(self._glyphs)

    def glyph(self, index: int, rng: Optional[np.random.Generator] = None) -> BrushGlyph:
        """Medians and outlines of glyph ``index`` (read-only float32 views, unit coords); rng unused."""
        return brush.unpack(self._a, self._glyphs[index])

    def name(self, index: int) -> str:
        return str(self._a["names"][self._glyphs[index]])

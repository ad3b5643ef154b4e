"""KanjiVG stroke data: SVG parsing, a verified on-disk cache and the codepoint split.

The ``kanjivg`` wheel ships a bare ``kanji/`` folder of SVG files (one per glyph
and variant, ``viewBox 0 0 109 109``, one centerline ``<path>`` per stroke in
writing order). Parsing all of them takes about 10 s, so the flattened polylines
are cached as one ``.npz`` that reloads in well under a second. The cache is
keyed by the package version, :data:`PARSER_VERSION` and the list of file names,
and carries a sha256 of its arrays (:mod:`.npzcache`): a corrupt, truncated or stale file is
reported with a warning and rebuilt, never used.

Data licence: KanjiVG is CC BY-SA 3.0, (c) Ulrich Apel (http://kanjivg.tagaini.net).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from inktrace_train.data import npzcache
from inktrace_train.data.formats import svg, xml
from inktrace_train.data.glyphs import DataError, split_members, split_of_key

log = logging.getLogger(__name__)

PARSER_VERSION = 1  # bump whenever parsing or flattening changes the cached arrays
VIEWBOX = 109.0  # KanjiVG canvas side, SVG units; unit coordinates = SVG / VIEWBOX
FLATTEN_TOLERANCE = 0.05  # SVG units a flattened stroke may stray from the curve (0.03 px at 64x64)
_ARRAYS = ("points", "stroke_offsets", "glyph_offsets", "names", "stroke_types")


@dataclass
class Corpus:
    """Every parsed glyph as flat arrays (cheap to cache, share and fork).

    Attributes:
        points: (P, 2) float32 stroke points in SVG units.
        stroke_offsets: (S + 1,) int64; stroke s is points[o[s]:o[s + 1]].
        glyph_offsets: (G + 1,) int64; glyph g is strokes g_o[g]:g_o[g + 1].
        names: (G,) file stems, e.g. ``04e00`` or ``04e14-Kaisho``.
        stroke_types: (S,) the ``kvg:type`` label of each stroke ("" if absent).
    """

    points: np.ndarray
    stroke_offsets: np.ndarray
    glyph_offsets: np.ndarray
    names: np.ndarray
    stroke_types: np.ndarray

    def arrays(self) -> Dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in _ARRAYS}


def kanji_dir() -> Path:
    """The folder of KanjiVG SVG files installed by the ``kanjivg`` package."""
    spec = importlib.util.find_spec("kanji")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("KanjiVG data not found: the `kanji` folder is missing; run `pip install kanjivg`")
    return Path(next(iter(spec.submodule_search_locations)))


def kanjivg_version() -> str:
    try:
        return importlib.metadata.version("kanjivg")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def parse_svg(text: str) -> Tuple[List[np.ndarray], List[str]]:
    """Stroke polylines (SVG units, writing order) and stroke types of one file, read by the
    general SVG reader (:mod:`.formats.svg`) with KanjiVG's flattening tolerance.

    Args:
        text: the SVG file contents.

    Returns:
        (polylines, types): one float32 (N, 2) array and one label per stroke.
    """
    strokes, types, _ = svg.read_strokes(xml.parse_bytes(text.encode("utf-8")), FLATTEN_TOLERANCE)
    return [p.astype(np.float32) for p in strokes], types


def _svg_files(folder: Path) -> List[Path]:
    return sorted(folder.glob("*.svg"))


def parse_folder(folder: Path) -> Corpus:
    """Parse every ``*.svg`` in ``folder``; unreadable files are skipped with a warning."""
    points: List[np.ndarray] = []
    stroke_lengths: List[int] = []
    glyph_sizes: List[int] = []
    names: List[str] = []
    types: List[str] = []
    skipped = 0
    for path in _svg_files(folder):
        try:
            strokes, kinds = parse_svg(path.read_text(encoding="utf-8"))
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            log.warning("skipping %s: %s", path.name, exc)
            skipped += 1
            continue
        if not strokes:
            continue
        points.extend(strokes)
        stroke_lengths.extend(len(s) for s in strokes)
        glyph_sizes.append(len(strokes))
        names.append(path.stem)
        types.extend(kinds)
    if not names:
        raise DataError(f"no usable KanjiVG SVG files in {folder} ({skipped} skipped)")
    return Corpus(
        points=np.concatenate(points).astype(np.float32),
        stroke_offsets=np.concatenate([[0], np.cumsum(stroke_lengths)]).astype(np.int64),
        glyph_offsets=np.concatenate([[0], np.cumsum(glyph_sizes)]).astype(np.int64),
        names=np.array(names, dtype=str),
        stroke_types=np.array(types, dtype=str),
    )


def _digest(arrays: Dict[str, np.ndarray]) -> str:
    return npzcache.digest(arrays, _ARRAYS)


def _source_key(folder: Path) -> Dict[str, object]:
    """What the cache must match: package and parser versions and the file list."""
    names = "\n".join(p.name for p in _svg_files(folder))
    return {
        "kanjivg_version": kanjivg_version(),
        "parser_version": PARSER_VERSION,
        "files_sha256": hashlib.sha256(names.encode()).hexdigest(),
    }


def cache_path(cache_dir: Optional[str | os.PathLike] = None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else npzcache.default_dir()
    return folder / f"kanjivg-{kanjivg_version()}-parser{PARSER_VERSION}.npz"


def read_cache(path: Path, expected: Dict[str, object]) -> Corpus:
    """Load and verify a cache file (:func:`npzcache.read`)."""
    return Corpus(**npzcache.read(path, _ARRAYS, expected))


def write_cache(path: Path, corpus: Corpus, key: Dict[str, object]) -> None:
    npzcache.write(path, corpus.arrays(), _ARRAYS, key)


def load_corpus(
    cache_dir: Optional[str | os.PathLike] = None,
    source_dir: Optional[str | os.PathLike] = None,
) -> Corpus:
    """The parsed corpus, from this process's memo, the cache or a fresh parse.

    Args:
        cache_dir: folder of the cache file; None means the user cache folder.
        source_dir: folder of SVG files; None means the installed package (tests
            pass a small folder here).

    Returns:
        The corpus (shared, read-only arrays).
    """
    folder = Path(source_dir) if source_dir is not None else kanji_dir()

    def build() -> Dict[str, np.ndarray]:
        log.info("parsing KanjiVG SVG files in %s (about 10 s, once)", folder)
        return parse_folder(folder).arrays()

    return Corpus(**npzcache.load_or_build(cache_path(cache_dir), _ARRAYS, _source_key(folder), build, log, "KanjiVG"))


def codepoint(name: str) -> str:
    """The codepoint part of a file stem: ``04e14-Kaisho`` -> ``04e14``."""
    return name.split("-", 1)[0]


def split_of(name: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a glyph by its codepoint (:func:`.glyphs.split_of_key`), so
    variants never straddle the split."""
    return split_of_key(codepoint(name), val_fraction, test_fraction)


class KanjiVGStrokes:
    """One split of KanjiVG glyphs as strokes in unit coordinates.

    Args:
        split: "train", "val" or "test".
        val_fraction, test_fraction: shares of codepoints held out.
        cache_dir: cache folder; None means ``$XDG_CACHE_HOME/inktrace_train``.
        source_dir: SVG folder override (tests); None means the installed package.
    """

    def __init__(
        self,
        split: str,
        val_fraction: float,
        test_fraction: float,
        cache_dir: Optional[str] = None,
        *,
        source_dir: Optional[str] = None,
    ) -> None:
        self.split = split
        self._corpus = load_corpus(cache_dir, source_dir)
        c = self._corpus
        names = c.names.tolist()
        # A fixed pseudo-random order, not codepoint order: the first N glyphs of a split (the
        # fixed validation set takes index % len) then mix kanji, kana and Latin alike.
        self._glyphs = split_members([codepoint(n) for n in names], names, split, val_fraction, test_fraction)
        if len(self._glyphs) == 0:
            raise DataError(
                f"KanjiVG split {split!r} is empty (val_fraction={val_fraction}, test_fraction={test_fraction})"
            )
        unit = c.points / np.float32(VIEWBOX)
        unit.flags.writeable = False
        self._unit_points = unit

    def __len__(self) -> int:
        return len(self._glyphs)

    def _stroke_range(self, index: int) -> range:
        g = self._glyphs[index]
        return range(int(self._corpus.glyph_offsets[g]), int(self._corpus.glyph_offsets[g + 1]))

    def glyph(self, index: int, rng: Optional[np.random.Generator] = None) -> List[np.ndarray]:
        """Strokes of glyph ``index`` (read-only float32 (N, 2) views, unit coords); rng unused."""
        o = self._corpus.stroke_offsets
        return [self._unit_points[o[s] : o[s + 1]] for s in self._stroke_range(index)]

    def name(self, index: int) -> str:
        return str(self._corpus.names[self._glyphs[index]])

    def stroke_types(self, index: int) -> List[str]:
        return [str(self._corpus.stroke_types[s]) for s in self._stroke_range(index)]

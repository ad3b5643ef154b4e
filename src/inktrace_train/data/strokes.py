"""Your own stroke data: ``data=strokes data.path=PATH`` (a file, or a folder searched recursively).

Files are read by their suffix (:data:`READERS`: SVG, InkML, NDJSON), every glyph is cleaned
and fitted to the unit square (:func:`clean`), and the result is cached per ``data.path``
(:mod:`.strokecache`). Bad input never stops a good dataset: every file, line, group or stroke
that cannot be used is skipped and counted, the counts are logged in one line at start-up, and
``python -m inktrace_train.data check PATH`` lists each one. Glyphs go to train, val or test by
a stable hash of their key (:func:`.glyphs.split_of_key`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from inktrace_train.data import npzcache, strokecache
from inktrace_train.data.formats import CUT_SHORT, MAX_FILE_BYTES, RawGlyph, Skip, inkml, ndjson, svg, too_large
from inktrace_train.data.glyphs import DataError, split_members, to_unit
from inktrace_train.data.strokecache import FileEntry, Glyph
from inktrace_train.errors import first_line

log = logging.getLogger(__name__)

READERS = {".svg": svg.read, ".inkml": inkml.read, ".ndjson": ndjson.read, ".jsonl": ndjson.read}
FORMATS = {".svg": "svg", ".inkml": "inkml", ".ndjson": "ndjson", ".jsonl": "ndjson"}
WHOLE_FILE = (".svg", ".inkml")  # parsed in memory at once, so bounded by MAX_FILE_BYTES
CHECK = "python -m inktrace_train.data check"


def clean(raw: RawGlyph) -> Tuple[Optional[Glyph], List[Skip]]:
    """A raw glyph as unit-coordinate float32 strokes, or None with the reason it is unusable.
    Empty strokes are dropped (and counted); a one-point stroke (a dot) is kept as a zero-length
    segment."""
    skips = [Skip(raw.where, "empty stroke") for s in raw.strokes if len(s) == 0]
    strokes = [np.repeat(s, 2, axis=0) if len(s) == 1 else s for s in raw.strokes if len(s)]
    reason = None
    if not strokes:
        reason = "no strokes"
    elif too_large(sum(len(s) for s in strokes), len(strokes)):
        reason = "glyph too large"
    elif not all(np.isfinite(s).all() for s in strokes):
        reason = "non-finite coordinate"
    else:
        pts = np.concatenate(strokes)
        if np.all(pts == pts[0]):
            reason = "degenerate glyph"
    if reason is None:
        with np.errstate(all="ignore"):  # an extent that overflows shows up as non-finite below
            unit = to_unit(strokes, raw.canvas)
        if all(np.isfinite(s).all() for s in unit):
            return Glyph(raw.key, raw.where, raw.label, unit), skips
        reason = "non-finite coordinate"
    return None, skips + [Skip(raw.where, reason)]


def parse_file(path: Path, name: str, size: int, mtime: int) -> Tuple[FileEntry, bool]:
    """One file's glyphs and skips, and whether the file as a whole could be read."""
    entry = FileEntry(name, size, mtime)
    suffix = path.suffix.lower()
    if suffix in WHOLE_FILE and size > MAX_FILE_BYTES:
        entry.skips.append(Skip(name, "file too large", f"{size:,} bytes (limit {MAX_FILE_BYTES:,})"))
        return entry, False
    try:
        items: List[RawGlyph | Skip] = list(READERS[suffix](path, name))
    except Exception as e:  # any failure on user input is a skipped file, never a traceback
        entry.skips.append(Skip(name, "unparseable file", first_line(e)[:200]))
        return entry, False
    for item in items:
        glyph, skips = (None, [item]) if isinstance(item, Skip) else clean(item)
        entry.skips.extend(skips)
        if glyph is not None:
            entry.glyphs.append(glyph)
    return entry, not any(s.reason == CUT_SHORT for s in entry.skips)


def list_files(root: Path) -> List[Tuple[Path, str, int, int]]:
    """(path, name relative to ``root``, size, mtime in ns) of every stroke file, sorted by name.
    Hidden files and folders (a leading dot: .ipynb_checkpoints, .git, an editor's ._ copies) are
    not searched: their copies would be glyphs of their own, in another split."""
    if root.is_file():
        paths = [(root, root.name)]
    else:
        paths = []
        for folder, dirs, files in os.walk(root):  # symbolic links to folders are not followed: no loops
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in files:
                if Path(f).suffix.lower() in READERS and not f.startswith("."):
                    p = Path(folder) / f
                    paths.append((p, p.relative_to(root).as_posix()))
    out = []
    for p, name in sorted(paths, key=lambda x: x[1]):
        try:
            st = p.stat()
        except OSError:
            continue  # vanished or a broken link: as if absent
        out.append((p, name, st.st_size, st.st_mtime_ns))
    return out


@dataclass
class StrokeSet:
    """The usable glyphs of one ``data.path`` and everything skipped on the way.

    Attributes:
        arrays: :data:`.strokecache.ARRAYS`, every glyph parsed (duplicates included).
        usable: indices of the glyphs used: the first of each key, in file order.
        skips: what was left out, in file order (files, lines, groups, strokes, duplicates).
        formats: (G,) the format of each glyph's file.
    """

    arrays: Dict[str, np.ndarray]
    usable: np.ndarray
    skips: List[Skip]
    formats: np.ndarray

    def summary(self) -> str:
        """One line: glyphs per format and skips per reason."""
        per_format = Counter(self.formats[self.usable].tolist())
        text = counted(len(self.usable), "glyph")
        if per_format:
            text += " (" + ", ".join(f"{f} {n:,}" for f, n in sorted(per_format.items())) + ")"
        text += f" from {counted(len(self.arrays['files']), 'file')}"
        if self.skips:
            reasons = Counter(s.reason for s in self.skips)
            text += f"; skipped {len(self.skips):,}: " + ", ".join(f"{n:,} {r}" for r, n in reasons.most_common())
        return text


def counted(n: int, noun: str) -> str:
    """``1 glyph``, ``2 glyphs``, ``1,024 glyphs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _assemble(arrays: Dict[str, np.ndarray], extra: List[Skip]) -> StrokeSet:
    """Drop later glyphs whose key was seen before (their split would be ambiguous)."""
    keys, wheres = arrays["keys"].tolist(), arrays["wheres"].tolist()
    first: Dict[str, int] = {}
    usable, skips = [], list(extra)
    for g, key in enumerate(keys):
        if key in first:
            skips.append(Skip(wheres[g], "duplicate key", f"{key!r} first at {wheres[first[key]]}"))
        else:
            first[key] = g
            usable.append(g)
    columns = (arrays[k].tolist() for k in ("skip_where", "skip_reason", "skip_detail"))
    cached = [Skip(*t) for t in zip(*columns, strict=True)]
    per_file = np.diff(arrays["file_glyphs"])
    suffix = [FORMATS[Path(n).suffix.lower()] for n in arrays["files"].tolist()]
    formats = np.repeat(np.array(suffix, dtype=str) if suffix else np.zeros(0, "<U1"), per_file)
    return StrokeSet(arrays, np.array(usable, np.int64), cached + skips, formats)


def _update(listing, cached: Dict[str, FileEntry]) -> Tuple[List[FileEntry], List[Skip]]:
    """Every file's entry: cached where its size and time match, parsed again otherwise. A
    changed file that can no longer be read keeps its cached glyphs (reported, not lost)."""
    entries, kept = [], []
    for path, name, size, mtime in listing:
        old = cached.get(name)
        if old is not None and (old.size, old.mtime) == (size, mtime):
            entries.append(old)
            continue
        entry, readable = parse_file(path, name, size, mtime)
        if not readable and old is not None and old.glyphs:
            reason = entry.skips[-1]
            kept.append(Skip(name, reason.reason, f"{reason.detail}; using its {len(old.glyphs)} glyphs cached before"))
            entry = old  # its old size and time: the next start tries the file again
        entries.append(entry)
    return entries, kept


def cache_file(root: Path, cache_dir: Optional[str | os.PathLike]) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else npzcache.default_dir()
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return folder / f"strokes-{digest}-parser{strokecache.PARSER_VERSION}.npz"


def load(
    path: str | os.PathLike,
    cache_dir: Optional[str | os.PathLike] = None,
    option: str = "data.path",
    require_usable: bool = True,
) -> StrokeSet:
    """The stroke set of ``path``, from this process's memo, the cache, or the files.

    Args:
        path: a stroke file or a folder of them.
        cache_dir: cache folder; None means the user cache folder.
        option: the config key that named ``path``, for messages ("": none, and no start-up line).
        require_usable: refuse a set without a usable glyph (``check`` lists why instead).

    Raises:
        DataError: no such path, no stroke file in it, or no usable glyph.
    """
    root = Path(path).expanduser()
    named = f"{option}={path}" if option else str(path)
    if not root.exists():
        raise DataError(f"{named}: no such file or folder")
    if root.is_file() and root.suffix.lower() not in READERS:
        raise DataError(f"{named}: not a stroke file (allowed: {', '.join(sorted(READERS))})")
    listing = list_files(root)
    if not listing:
        raise DataError(f"{named}: no stroke files there (allowed: {', '.join(sorted(READERS))})")
    cache = cache_file(root, cache_dir)
    stamp = hashlib.sha256(repr([x[1:] for x in listing]).encode("utf-8", "surrogatepass")).hexdigest()
    memo_key = ("strokes", str(cache), stamp)
    if memo_key in npzcache.MEMO:
        return npzcache.MEMO[memo_key]
    key = {"parser_version": strokecache.PARSER_VERSION, "root": str(root.resolve())}
    arrays = None
    if cache.exists():
        try:
            arrays = npzcache.read(cache, strokecache.ARRAYS, key)
        except Exception as exc:  # any failure to read means "do not trust it"
            log.warning("stroke cache %s is unusable (%s); rebuilding it", cache, exc)
    cached = strokecache.entries_of(arrays) if arrays is not None else {}
    same = arrays is not None and [(e.name, e.size, e.mtime) for e in cached.values()] == [x[1:] for x in listing]
    kept: List[Skip] = []
    if not same:
        log.info("reading stroke files in %s", root)
        entries, kept = _update(listing, cached)
        arrays = strokecache.to_arrays(entries)
        npzcache.write(cache, arrays, strokecache.ARRAYS, key)
    for a in arrays.values():
        a.flags.writeable = False
    result = _assemble(arrays, kept)
    if require_usable and not len(result.usable):
        raise DataError(f"{named}: no usable glyph ({result.summary()}); see `{CHECK} {path}`")
    if option:  # check prints it itself
        level = logging.WARNING if result.skips else logging.INFO
        log.log(level, "%s: %s%s", named, result.summary(), f"; details: `{CHECK} {path}`" * bool(result.skips))
    npzcache.MEMO[memo_key] = result
    return result


class StrokeFiles:
    """One split of the glyphs under ``path``, as unit-coordinate strokes.

    Args:
        split: "train", "val" or "test".
        val_fraction, test_fraction: shares of keys held out.
        path: a stroke file or a folder of them (``data.path``).
        cache_dir: cache folder; None means ``$XDG_CACHE_HOME/inktrace_train``.
        option: the config key that named ``path``, for messages.
    """

    def __init__(
        self,
        split: str,
        val_fraction: float,
        test_fraction: float,
        path: str,
        cache_dir: Optional[str] = None,
        option: str = "data.path",
    ) -> None:
        self.set = load(path, cache_dir, option)
        a = self.set.arrays
        keys = a["keys"][self.set.usable].tolist()
        self._glyphs = self.set.usable[split_members(keys, keys, split, val_fraction, test_fraction)]
        if not len(self._glyphs):
            raise DataError(
                f"{option}={path}: split {split!r} is empty ({counted(len(keys), 'usable glyph')}; data.val_fraction="
                f"{val_fraction}, data.test_fraction={test_fraction}): add glyphs or raise the fraction"
            )

    def __len__(self) -> int:
        return len(self._glyphs)

    def glyph(self, index: int, rng: Optional[np.random.Generator] = None) -> List[np.ndarray]:
        """Strokes of glyph ``index`` (read-only float32 (N, 2) views, unit coords); rng unused."""
        a, g = self.set.arrays, self._glyphs[index]
        so, go = a["stroke_offsets"], a["glyph_offsets"]
        return [a["points"][so[s] : so[s + 1]] for s in range(go[g], go[g + 1])]

    def name(self, index: int) -> str:
        return str(self.set.arrays["keys"][self._glyphs[index]])

    def label(self, index: int) -> str:
        return str(self.set.arrays["labels"][self._glyphs[index]])

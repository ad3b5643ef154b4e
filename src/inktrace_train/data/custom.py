"""Custom sources in Python: ``data=custom data.source_target=package.module.Class``.

The class implements :class:`GlyphSource` and is built with ``data.source_args`` as keyword
arguments (Hydra ``_target_`` style). Its glyphs are cleaned and fitted to the unit square as
InkML and NDJSON glyphs are (:func:`.strokes.clean`), and split by a stable hash of
``name(i)``; a class whose constructor takes ``split`` is given "train", "val" or "test"
instead and splits itself (a generator of endless random glyphs, say).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any, Dict, List, Optional, Protocol, Sequence

import numpy as np

from inktrace_train.data.formats import RawGlyph
from inktrace_train.data.glyphs import DataError, split_members
from inktrace_train.data.strokes import clean
from inktrace_train.errors import first_line

log = logging.getLogger(__name__)

MAX_TRIES = 100  # consecutive unusable glyphs after which a custom source is refused
METHODS = ("__len__", "glyph", "name")


class GlyphSource(Protocol):
    """What ``data.source_target``'s class implements.

    ``glyph(i)`` returns the strokes of glyph ``i`` in writing order: each an (N, 2) array-like
    of x, y (y down, any units; the glyph is fitted to the canvas with its aspect kept).
    ``name(i)`` is its key: unique and stable, it decides the glyph's split.
    """

    def __len__(self) -> int: ...

    def glyph(self, index: int) -> Sequence[Any]: ...

    def name(self, index: int) -> str: ...


def load_class(target: str) -> type:
    """The class a dotted path names, or a DataError that says what is missing."""
    module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the module's own code failing: one line either way
        raise DataError(
            f"data.source_target={target}: cannot import {module_name} ({first_line(e)}); is it on PYTHONPATH?"
        ) from None
    cls = getattr(module, attr, None)
    if not inspect.isclass(cls):
        raise DataError(f"data.source_target={target}: {module_name} has no class {attr}")
    missing = [m for m in METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise DataError(f"data.source_target={target}: {attr} lacks {', '.join(missing)} (see GlyphSource)")
    return cls


class CustomSource:
    """One split of a user's :class:`GlyphSource`, cleaned and fitted to the unit square.

    Args:
        target: ``package.module.Class``.
        kwargs: its constructor's keyword arguments (``data.source_args``).
        split: "train", "val" or "test".
        val_fraction, test_fraction: shares of names held out (unless the class splits itself).
    """

    def __init__(
        self, target: str, kwargs: Dict[str, Any], split: str, val_fraction: float, test_fraction: float
    ) -> None:
        cls = load_class(target)
        self.target = target
        own_split = "split" in inspect.signature(cls).parameters
        try:
            self.source = cls(**kwargs, **({"split": split} if own_split else {}))
            n = len(self.source)
            if own_split:
                self._index: Sequence[int] = range(n)
            else:
                names = [str(self.source.name(i)) for i in range(n)]
                self._index = split_members(names, names, split, val_fraction, test_fraction)
        except Exception as e:  # the user's code: one line that names it, not a traceback
            raise DataError(f"data.source_target={target}: {type(e).__name__}: {first_line(e)}") from None
        if not len(self._index):
            raise DataError(
                f"data.source_target={target}: split {split!r} is empty ({n} glyphs; data.val_fraction="
                f"{val_fraction}, data.test_fraction={test_fraction})"
            )
        self.skipped = 0  # unusable glyphs met so far (in this process)

    def __len__(self) -> int:
        return len(self._index)

    def _clean(self, i: int) -> Optional[List[np.ndarray]]:
        try:
            strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in self.source.glyph(i)]
        except Exception as e:  # a glyph the source cannot give is skipped like a bad line of a file
            log.warning("data.source_target=%s: glyph %d skipped: %s", self.target, i, first_line(e))
            return None
        glyph, skips = clean(RawGlyph(key=str(i), where=f"glyph {i}", label="", strokes=strokes))
        if glyph is None:
            log.warning("data.source_target=%s: glyph %d skipped: %s", self.target, i, skips[-1].reason)
        return None if glyph is None else glyph.strokes

    def glyph(self, index: int, rng: Optional[np.random.Generator] = None) -> List[np.ndarray]:
        """The strokes of glyph ``index`` of the split, or of the next usable one after it (a
        pure function of the index, so every sample stays reproducible); rng unused."""
        for step in range(min(MAX_TRIES, len(self))):
            strokes = self._clean(int(self._index[(index + step) % len(self)]))
            if strokes is not None:
                return strokes
            self.skipped += 1
        raise DataError(f"data.source_target={self.target}: {MAX_TRIES} glyphs in a row are unusable")

    def name(self, index: int) -> str:
        return str(self.source.name(int(self._index[index])))

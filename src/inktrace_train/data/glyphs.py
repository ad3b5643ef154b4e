"""What every stroke source shares: the split by a stable hash of a glyph's key, the fixed order
inside a split, the fit of raw coordinates to the unit square, and the mix of several sources.

A glyph is a list of float32 (N, 2) polylines in unit coordinates, y down: the unit square is
the canvas the augmentation scales to the image.
"""

from __future__ import annotations

import hashlib
from typing import List, Optional, Sequence, Tuple

import numpy as np

from inktrace_train.errors import UserError

SPLITS = ("train", "val", "test")


class DataError(UserError):
    """A data source cannot be used (missing package, empty split, bad files)."""


def split_of_key(key: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a glyph by its key (a codepoint, a file path, a line's key).

    An unsalted hash maps the key to u in [0, 1): val is u < val_fraction, test is
    u >= 1 - test_fraction, so changing one fraction never moves glyphs between the other two
    splits, and a glyph keeps its split when files are added, removed or reordered.
    """
    digest = hashlib.sha256(b"inktrace-split:" + key.encode("utf-8", "surrogatepass")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < val_fraction:
        return "val"
    if u >= 1.0 - test_fraction:
        return "test"
    return "train"


def order_key(name: str) -> bytes:
    """Sort key of the fixed pseudo-random order inside a split."""
    return hashlib.sha256(b"inktrace-order:" + name.encode("utf-8", "surrogatepass")).digest()


def split_members(keys: Sequence[str], names: Sequence[str], split: str, val_fraction: float, test_fraction: float):
    """Indices of the glyphs in ``split``, in a fixed pseudo-random order (not file order: the
    first N glyphs of a split, which the fixed validation set takes, then mix every part alike).

    Args:
        keys: what decides the split, one per glyph (KanjiVG: the codepoint, so variants stay together).
        names: what decides the order, one per glyph (unique).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    member = [i for i, k in enumerate(keys) if split_of_key(k, val_fraction, test_fraction) == split]
    return np.array(sorted(member, key=lambda i: order_key(names[i])), dtype=np.int64)


Box = Tuple[float, float, float, float]  # x, y, width, height


def to_unit(strokes: List[np.ndarray], canvas: Optional[Box] = None) -> List[np.ndarray]:
    """Raw strokes (y down) to unit coordinates, aspect kept.

    With a ``canvas`` (an SVG viewBox) the canvas maps to the unit square, centred, so a glyph
    keeps its size and place on its page (KanjiVG: ``0 0 109 109`` -> divide by 109). Without
    one (InkML, NDJSON, custom sources) the glyph's own bounding box is fitted: its longer side
    becomes 1 and it is centred.
    """
    pts = np.concatenate(strokes)
    if canvas is None:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        extent = hi - lo
    else:
        lo, extent = np.array(canvas[:2], np.float64), np.array(canvas[2:], np.float64)
    side = float(extent.max())
    shift = (side - extent) / 2.0
    return [((s - lo + shift) / side).astype(np.float32) for s in strokes]


class MixedStrokes:
    """Sources interleaved: index i comes from source ``i % k`` (each wrapping around), so
    training draws from all alike and a fixed validation set holds every source. With integer
    ``weights``, each run of ``sum(weights)`` indices holds ``weights[j]`` of source j's glyphs."""

    def __init__(self, *sources, weights: Optional[Sequence[int]] = None) -> None:
        self.sources = sources
        self.weights = tuple(weights) if weights is not None else (1,) * len(sources)
        if len(self.weights) != len(sources) or not all(isinstance(w, int) and w >= 1 for w in self.weights):
            raise ValueError(f"MixedStrokes: one integer weight >= 1 per source ({len(sources)}), got {self.weights}")
        self._slots = [j for j, w in enumerate(self.weights) for _ in range(w)]
        self._rank = [self._slots[:i].count(j) for i, j in enumerate(self._slots)]

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def glyph(self, index: int, rng: Optional[np.random.Generator] = None):
        run, slot = divmod(index, len(self._slots))
        j = self._slots[slot]
        source = self.sources[j]
        return source.glyph((run * self.weights[j] + self._rank[slot]) % len(source), rng)

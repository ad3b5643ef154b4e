"""Random cubic Bezier strokes: a data source that needs no download (tests, smoke runs)."""

from __future__ import annotations

from typing import List

import numpy as np

POINTS = 32  # per stroke: chords of at most ~2.5 px at 64x64, far inside the wobble's wavelength
LENGTH_RANGE = (0.2, 0.8)  # chord length of a stroke, unit coordinates
BEND = 0.35  # control points stray up to this fraction of the chord from it

_T = np.linspace(0.0, 1.0, POINTS)[:, None]
_BERNSTEIN = np.hstack([(1 - _T) ** 3, 3 * (1 - _T) ** 2 * _T, 3 * (1 - _T) * _T**2, _T**3])  # (P, 4)


class SyntheticStrokes:
    """Glyphs of 1..max_strokes random cubic Bezier strokes in the unit square.

    Args:
        max_strokes: the most strokes per glyph.
    """

    def __init__(self, max_strokes: int) -> None:
        if max_strokes < 1:
            raise ValueError(f"max_strokes must be >= 1, got {max_strokes}")
        self.max_strokes = int(max_strokes)

    def __len__(self) -> int:
        return 2**31  # nominal: every glyph is drawn fresh from the rng

    def glyph(self, index: int, rng: np.random.Generator) -> List[np.ndarray]:
        """A random glyph; ``index`` is ignored, everything comes from ``rng``.

        Each stroke is a chord of random direction and length whose two inner
        control points sit along it and bent off it to either side.

        Returns:
            Strokes as float32 (POINTS, 2) polylines in unit coordinates.
        """
        n = int(rng.integers(1, self.max_strokes + 1))
        length = rng.uniform(*LENGTH_RANGE, size=(n, 1))
        angle = rng.uniform(0, 2 * np.pi, size=(n, 1))
        chord = length * np.hstack([np.cos(angle), np.sin(angle)])
        normal = np.hstack([-chord[:, 1:], chord[:, :1]])
        # Pull each start back in so that the chord ends inside the unit square.
        p0 = np.clip(rng.uniform(0.0, 1.0, size=(n, 2)), np.maximum(0.0, -chord), np.minimum(1.0, 1.0 - chord))
        along = rng.uniform([0.15, 0.55], [0.45, 0.85], size=(n, 2))
        bend = rng.uniform(-BEND, BEND, size=(n, 2))
        c1 = p0 + along[:, :1] * chord + bend[:, :1] * normal
        c2 = p0 + along[:, 1:] * chord + bend[:, 1:] * normal
        controls = np.stack([p0, c1, c2, p0 + chord], axis=1)  # (n, 4, 2)
        points = np.einsum("pk,nkd->npd", _BERNSTEIN, controls).astype(np.float32)
        return list(points)

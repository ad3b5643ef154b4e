"""The pen of a glyph: how wide each stroke is along its length, how it ends, how it is inked
(a swept disk or a filled outline), and the faint hairlines that join consecutive strokes.

:class:`PenStyle` draws one :class:`Pen` per glyph from the sample's generator (so it is fixed
by seed, epoch and index); both renderers evaluate it with :meth:`Pen.sample_half_widths`, so the
half width they draw and the ``width`` target they give are one number. A pen whose width is
the same all along each stroke, with round ends, is drawn as before (``Pen.varies`` is False).

Width along a stroke of length L, at arc length a (the pressure profile, per stroke)::

    (r0 + (1 - r0) s(a / (l0 L))) * (r1 + (1 - r1) s((L - a) / (l1 L))) * (1 + w sin(pi a / L)) / (1 + w)

with s the smoothstep: each end thins to r0 / r1 over l0 / l1 of the stroke, the middle swells
by w; the widest point is never wider than the stroke's pen. A broad nib multiplies this by
``1 - c (1 - |sin(theta - phi)|)``: strokes along the nib angle phi are the thinnest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

STROKE_WIDTH_JITTER = 0.1  # per-stroke pen width varies by up to +-10 % around the glyph's
TAPER_LENGTH = (0.1, 0.5)  # a pressure stroke thins over this share of its length at each end
SWELL = (0.0, 0.5)  # a pressure stroke's middle is up to this much wider than its unthinned ends
NIB_CONTRAST = (0.3, 0.7)  # share of the width a broad nib loses on strokes along its angle
HAIRLINE_POINTS = 9  # points of a hairline's polyline (a quadratic Bezier)
HAIRLINE_CARRY = (0.0, 0.5)  # a hairline leaves its stroke along the stroke's end direction for
# this share of the gap before it turns to the next stroke (the control point of its Bezier)
MIN_GAP = 1.0  # px; consecutive strokes closer than this need no hairline
JOIN_WIDTH = (0.4, 1.0)  # a cursive join's width, a share of the width of the stroke it leaves


@dataclass(frozen=True)
class Hairlines:
    """Faint connections drawn into the ink only (no skeleton, keypoint or tangent target).

    Attributes:
        lines: one float (HAIRLINE_POINTS, 2) polyline per hairline, pixel coordinates.
        half_width: (H,) half width of each, pixels.
        intensity: (H,) darkness of each (1: full ink, a cursive join).
    """

    lines: List[np.ndarray] = field(default_factory=list)
    half_width: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    intensity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


@dataclass(frozen=True)
class Pen:
    """How one glyph's strokes are inked.

    Attributes:
        half_width: (S,) float32 the widest half width of each stroke, pixels.
        profile: (S, 5) pressure profile per stroke (r0, r1, l0, l1, w; see the module), or
            None for a width constant along each stroke.
        nib: (angle phi, contrast c) of a broad nib, or None for a round one.
        flat_caps: strokes end flat (butt) at their ends instead of round.
        outline: strokes are filled outlines with mitred corners (the brush path), not swept disks.
        hairlines: faint connections between consecutive strokes.
    """

    half_width: np.ndarray
    profile: Optional[np.ndarray] = None
    nib: Optional[Tuple[float, float]] = None
    flat_caps: bool = False
    outline: bool = False
    hairlines: Hairlines = field(default_factory=Hairlines)

    @property
    def varies(self) -> bool:
        """Whether the ink must be swept sample by sample (width changing or flat ends)."""
        return self.profile is not None or self.nib is not None or self.flat_caps

    def select(self, keep: List[int]) -> Pen:
        """The pen of the strokes ``keep`` (the renderers drop empty strokes)."""
        profile = None if self.profile is None else self.profile[keep]
        return Pen(self.half_width[keep], profile, self.nib, self.flat_caps, self.outline, self.hairlines)

    def sample_half_widths(self, sid: np.ndarray, arc: np.ndarray, stroke_len: np.ndarray, tangents: np.ndarray):
        """Half width (M,) float64 at each centerline sample (stroke ``sid``, ``arc`` from its start,
        unit ``tangents``), per the module's formula."""
        hw = np.asarray(self.half_width, np.float64)[sid]
        if self.profile is not None:
            r0, r1, l0, l1, w = np.asarray(self.profile, np.float64)[sid].T
            length = np.maximum(stroke_len[sid], 1e-6)
            start = r0 + (1 - r0) * _smoothstep(arc / (l0 * length))
            end = r1 + (1 - r1) * _smoothstep((length - arc) / (l1 * length))
            hw = hw * start * end * (1 + w * np.sin(np.pi * np.clip(arc / length, 0, 1))) / (1 + w)
        if self.nib is not None:
            angle, contrast = self.nib
            across = np.abs(tangents[:, 1] * np.cos(angle) - tangents[:, 0] * np.sin(angle))  # |sin(theta - phi)|
            hw = hw * (1 - contrast * (1 - across))
        return hw


def chance(share: float, rng: np.random.Generator) -> bool:
    """A yes with probability ``share``; draws nothing when the option is off, so samples of a
    config without it are those of the code before it existed."""
    return share > 0 and rng.uniform() < share


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class PenStyle:
    """Draws each glyph's pen. The argument names equal the DataConfig fields on purpose.

    Args:
        pen_width_min, pen_width_max: full pen width range, pixels.
        pen_width_sampling: "uniform" or "log_uniform" in that range.
        pen_pressure: share of glyphs whose width varies along each stroke.
        pen_taper: the thinnest a pressure stroke's ends get, a fraction of its widest.
        pen_nib: share of glyphs drawn with a broad nib.
        pen_flat_caps: share of glyphs whose strokes end flat.
        outline_ink: share of glyphs drawn as filled outlines.
        hairlines: share of glyphs with hairlines; hairline_gap: chance of one at each gap.
        hairline_width_min, hairline_width_max: full width range of a hairline, pixels.
        hairline_intensity_min, hairline_intensity_max: its darkness range.
        cursive_joins: share of glyphs whose gaps (each with chance hairline_gap) are joined in
            full ink instead, at JOIN_WIDTH of the pen width of the stroke each leaves.
    """

    def __init__(
        self,
        pen_width_min: float,
        pen_width_max: float,
        pen_width_sampling: str,
        pen_pressure: float,
        pen_taper: float,
        pen_nib: float,
        pen_flat_caps: float,
        outline_ink: float,
        hairlines: float,
        hairline_gap: float,
        hairline_width_min: float,
        hairline_width_max: float,
        hairline_intensity_min: float,
        hairline_intensity_max: float,
        cursive_joins: float,
    ) -> None:
        if pen_width_sampling not in ("uniform", "log_uniform"):
            raise ValueError(f"pen_width_sampling must be uniform or log_uniform, got {pen_width_sampling!r}")
        self.width = (float(pen_width_min), float(pen_width_max))
        self.log_width = pen_width_sampling == "log_uniform"
        self.pressure, self.taper = float(pen_pressure), float(pen_taper)
        self.nib, self.flat_caps, self.outline = float(pen_nib), float(pen_flat_caps), float(outline_ink)
        self.hairlines, self.hairline_gap = float(hairlines), float(hairline_gap)
        self.hairline_width = (float(hairline_width_min), float(hairline_width_max))
        self.hairline_intensity = (float(hairline_intensity_min), float(hairline_intensity_max))
        self.cursive_joins = float(cursive_joins)

    def half_widths(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Each stroke's widest half width: one pen per glyph, each stroke varying slightly around
        it, in range. Drawn before the geometry (fitting the glyph needs the widest)."""
        lo, hi = self.width
        width = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if self.log_width else rng.uniform(lo, hi)
        jitter = 1.0 + rng.uniform(-STROKE_WIDTH_JITTER, STROKE_WIDTH_JITTER, size=n)
        return (np.clip(width * jitter, lo, hi) / 2.0).astype(np.float32)

    def pen(self, half_width: np.ndarray, strokes: List[np.ndarray], rng: np.random.Generator) -> Pen:
        """The rest of the glyph's pen, drawn after its geometry (``strokes`` in pixels)."""
        n = len(half_width)
        profile = None
        if chance(self.pressure, rng):
            ends = rng.uniform(self.taper, 1.0, size=(n, 2))
            lengths = rng.uniform(*TAPER_LENGTH, size=(n, 2))
            profile = np.concatenate([ends, lengths, rng.uniform(*SWELL, size=(n, 1))], 1).astype(np.float32)
        nib = (rng.uniform(0, np.pi), rng.uniform(*NIB_CONTRAST)) if chance(self.nib, rng) else None
        flat = chance(self.flat_caps, rng)
        outline = chance(self.outline, rng)
        return Pen(half_width, profile, nib, flat, outline, self.draw_hairlines(strokes, rng, half_width))

    def draw_hairlines(
        self, strokes: List[np.ndarray], rng: np.random.Generator, half_width: Optional[np.ndarray] = None
    ) -> Hairlines:
        """Hairlines from the end of each stroke to the start of the next, each with probability
        hairline_gap, in a glyph drawn with them (share ``hairlines``). Each is a quadratic Bezier
        that leaves its stroke along the stroke's end direction. Given the strokes' ``half_width``
        (pen glyphs), a glyph with cursive joins (share ``cursive_joins``) has them in full ink, as
        wide as JOIN_WIDTH of the stroke each leaves, instead."""
        joined = half_width is not None and chance(self.cursive_joins, rng)
        if not (joined or chance(self.hairlines, rng)) or len(strokes) < 2:
            return Hairlines()
        ends = np.array([s[-1] for s in strokes[:-1]], np.float64)
        starts = np.array([s[0] for s in strokes[1:]], np.float64)
        last = np.array([s[-1] - s[-2] if len(s) > 1 else np.zeros(2) for s in strokes[:-1]], np.float64)
        direction = last / np.maximum(np.linalg.norm(last, axis=1, keepdims=True), 1e-9)
        gap = np.linalg.norm(starts - ends, axis=1)
        drawn = rng.uniform(size=len(gap)) < self.hairline_gap
        carry = rng.uniform(*HAIRLINE_CARRY, size=len(gap))
        if joined:
            half = np.asarray(half_width, np.float64)[:-1] * rng.uniform(*JOIN_WIDTH, size=len(gap))
            intensity = np.ones(len(gap))
        else:
            half = rng.uniform(*self.hairline_width, size=len(gap)) / 2.0
            intensity = rng.uniform(*self.hairline_intensity, size=len(gap))
        pick = np.flatnonzero(drawn & (gap >= MIN_GAP))
        control = ends + (carry * gap)[:, None] * direction
        t = np.linspace(0.0, 1.0, HAIRLINE_POINTS)[:, None]
        lines = [
            ((1 - t) ** 2 * ends[i] + 2 * (1 - t) * t * control[i] + t**2 * starts[i]).astype(np.float32) for i in pick
        ]
        return Hairlines(lines, half[pick].astype(np.float32), intensity[pick].astype(np.float32))


__all__ = ["Hairlines", "Pen", "PenStyle", "chance"]

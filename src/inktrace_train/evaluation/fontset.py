"""The out-of-distribution fonts set: test-split characters rendered from real CJK fonts
(:mod:`inktrace_train.data.fonts`), read through ``predict``'s image rule (:mod:`.imaging`, each
image one glyph, as ``predict --single`` reads it), and scored by what a font offers as truth:
its stroke count (KanjiVG or hanzi-writer-data).

Scores of a tracer (the model, or a classical skeleton) per font and over all fonts (every glyph
of every font pooled):

- ``count_error``: mean |traced strokes - true strokes| per glyph;
- ``count_exact`` / ``count_within_1``: the share of glyphs whose count is right / off by at most 1;
- ``traced_true_ratio``: sum of traced over sum of true strokes (above 1: strokes cut in pieces or
  spurs; below 1: strokes merged, or ink dropped);
- ``ink_recall``: the share of the input's reference skeleton that lies under a traced stroke
  drawn with the input's pen (:func:`strokemetrics.ink_counts`, pooled): a count can be right
  while a radical is lost; ``ink_recall_2px``, within 2 px of one whatever the ink's width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from inktrace_train.config.schema import HANZI_FETCH
from inktrace_train.data.fonts import FontPackage, find_fonts, split_strokes
from inktrace_train.evaluation.imaging import place, read_ink
from inktrace_train.evaluation.strokemetrics import ink_counts

Tracer = Callable[[np.ndarray], List[np.ndarray]]  # a (size, size) canvas -> traced polylines
OVERALL = "overall"  # the row that pools every glyph of every font


@dataclass(frozen=True)
class FontGlyph:
    """One test character as one font draws it: the model's input and the true stroke count."""

    char: str
    true_count: int
    canvas: np.ndarray


def font_glyphs(package: FontPackage, characters: Sequence[Tuple[str, int]], n: int, size: int) -> List[FontGlyph]:
    """The first ``n`` of ``characters`` (char, true count) that the font has, each rendered and
    read through the image rule onto a (size, size) canvas; characters it lacks are skipped."""
    glyphs = []
    for char, count in characters:
        if len(glyphs) == n:
            break
        image = package.render(char)
        if image is not None:
            glyphs.append(FontGlyph(char, count, place(read_ink(image), size)[0]))
    return glyphs


def font_set(
    fonts_dir: str,
    n: int,
    size: int,
    fractions: Tuple[float, float],
    cache_dir: Optional[str] = None,
    hanzi_dir: Optional[str] = None,
    split: str = "test",
    any_fonts: bool = False,
) -> Tuple[Dict[str, List[FontGlyph]], List[str], Dict[str, str]]:
    """The glyphs of every font of the split found in ``fonts_dir`` (up to ``n`` each, the split's
    characters in its fixed order; ``val``: the validation fonts and characters), by font name;
    notes on what was passed over: Chinese fonts without ``hanzi_dir`` (their truth is
    hanzi-writer-data), packages that are not the set's; and each font's style. ``any_fonts``:
    every Japanese or Chinese font there (:func:`~inktrace_train.data.fonts.find_fonts`)."""
    packages, notes = find_fonts(fonts_dir, split, any_fonts)
    truth: Dict[str, List[Tuple[str, int]]] = {}
    fonts = {}
    for package in packages:
        language = package.font.language
        if language == "zh" and hanzi_dir is None:
            notes.append(
                f"{package.font.name} (Chinese) is scored on hanzi-writer-data: it needs --hanzi-dir PATH"
                f" (get the data: `{HANZI_FETCH}`)"
            )
            continue
        if language not in truth:
            strokes = split_strokes(language, *fractions, cache_dir, hanzi_dir, split)
            truth[language] = [(char, len(known)) for char, known in strokes]
        fonts[package.font.name] = font_glyphs(package, truth[language], n, size)
    return fonts, notes, {p.font.name: p.font.style for p in packages}


def count_scores(per_glyph: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """The set's scores from per-glyph ``n_traced``, ``n_true``, ``ink_traced``, ``ink_total``."""
    traced = np.array([g["n_traced"] for g in per_glyph], float)
    true = np.array([g["n_true"] for g in per_glyph], float)
    error = np.abs(traced - true)
    ink_total = sum(g["ink_total"] for g in per_glyph)
    return {
        "glyphs": float(len(per_glyph)),
        "count_error": float(error.mean()) if len(error) else float("nan"),
        "count_exact": float((error == 0).mean()) if len(error) else float("nan"),
        "count_within_1": float((error <= 1).mean()) if len(error) else float("nan"),
        "traced_true_ratio": float(traced.sum() / true.sum()) if true.sum() else float("nan"),
        "ink_recall": sum(g["ink_traced"] for g in per_glyph) / ink_total if ink_total else float("nan"),
        "ink_recall_2px": sum(g["ink_traced_2px"] for g in per_glyph) / ink_total if ink_total else float("nan"),
    }


def glyph_counts(tracer: Tracer, glyph: FontGlyph) -> Dict[str, float]:
    polylines = tracer(glyph.canvas)
    return {"n_traced": float(len(polylines)), "n_true": float(glyph.true_count), **ink_counts(glyph.canvas, polylines)}


def font_rows(tracers: Dict[str, Tracer], fonts: Dict[str, List[FontGlyph]]) -> Dict[str, Dict[str, float]]:
    """Scores keyed ``<method>@fonts/<font>`` for each tracer and font, and ``<method>@fonts`` over
    all fonts."""
    rows = {}
    for method, tracer in tracers.items():
        pooled = []
        for font, glyphs in fonts.items():
            counts = [glyph_counts(tracer, g) for g in glyphs]
            rows[f"{method}@fonts/{font}"] = count_scores(counts)
            pooled += counts
        rows[f"{method}@fonts"] = count_scores(pooled)
    return rows


COLUMNS = (
    ("glyphs", "glyphs"),
    ("count_error", "count err"),
    ("count_exact", "exact"),
    ("count_within_1", "within 1"),
    ("traced_true_ratio", "traced/true"),
    ("ink_recall", "ink recall"),
    ("ink_recall_2px", "ink recall 2 px"),
)


def table(rows: Dict[str, Dict[str, float]], styles: Dict[str, str]) -> str:
    """The fonts rows as one markdown table: each font's methods together, the overall rows last."""
    head = "| font | style | method | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    keys = [(*key.split("@", 1), key) for key in rows]
    methods = list(dict.fromkeys(method for method, _, _ in keys))
    places = list(dict.fromkeys(where for _, where, _ in keys if "/" in where)) + ["fonts"]
    for where in places:
        font = where.split("/", 1)[1] if "/" in where else OVERALL
        for method in methods:
            values = rows.get(f"{method}@{where}")
            if values is None:
                continue
            cells = [
                f"{values[k]:.0f}" if k == "glyphs" else f"{values[k]:.3f}" if np.isfinite(values[k]) else "-"
                for k, _ in COLUMNS
            ]
            lines.append(f"| {font} | {styles.get(font, '')} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

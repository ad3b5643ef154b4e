"""How often the page rule (evaluation/pages.py) finds a character in parts or two as one.

Draws test-split KanjiVG glyphs alone and in pairs (side by side, of one size or two, and in a
column) on white pages, finds the glyphs, and prints per layout how many pages did not give
exactly the glyphs drawn; then the glyphs found on the tracing guide's page (docs/page.png,
ten glyphs). No model runs: this measures the grouping alone.

Run: ``python scripts/page_grouping.py`` (10 s on this project's 2-core CPU machine).
"""

from __future__ import annotations

from pathlib import Path

import cv2

from inktrace_train.config.schema import DataConfig
from inktrace_train.data.kanjivg import KanjiVGStrokes
from inktrace_train.data.page import blank_page, draw_glyph
from inktrace_train.evaluation.pages import find_glyphs

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "page.png"
# (label, pages, first size px, second size px or 0 for one glyph, gap as a share of the larger, column)
LAYOUTS = [
    ("one glyph, 100 px", 300, 100, 0, 0.0, False),
    ("one glyph, 300 px", 225, 300, 0, 0.0, False),
    ("two of 60 px, gap 0.3 of their size", 300, 60, 60, 0.3, False),
    ("two of 60 px, gap 0.5", 300, 60, 60, 0.5, False),
    ("two of 120 px, gap 0.3", 225, 120, 120, 0.3, False),
    ("75 px beside 150 px, gap 0.3 of the larger", 225, 150, 75, 0.3, False),
    ("57 px beside 92 px, gap 0.16", 225, 92, 57, 0.16, False),
    ("60 px beside 100 px, gap 0.1", 225, 100, 60, 0.1, False),
    ("two of 80 px in a column, gap 0.2", 225, 80, 80, 0.2, True),
]


def wrong_pages(split: KanjiVGStrokes, pages: int, a: int, b: int, gap: float, column: bool) -> int:
    """Pages whose glyphs found are not the glyphs drawn: glyph k alone, or glyphs 2k and 2k + 1."""
    wrong = 0
    for k in range(pages):
        space = round(gap * max(a, b))
        long_side = a + b + space + 40
        page = blank_page(long_side, a + 20) if column else blank_page(a + 20, long_side)
        first = draw_glyph(page, split.glyph((2 * k if b else k) % len(split)), 10, 10, a)
        if b:
            x, y = (10, first.box[3] + space) if column else (first.box[2] + space, 10 + (a - b) / 2)
            draw_glyph(page, split.glyph((2 * k + 1) % len(split)), x, y, b)
        wrong += len(find_glyphs(255 - page)[1]) != (2 if b else 1)
    return wrong


def main() -> None:
    d = DataConfig()
    split = KanjiVGStrokes("test", d.val_fraction, d.test_fraction, d.cache_dir)
    print("| layout | pages | wrong |\n|---|---|---|")
    for label, pages, a, b, gap, column in LAYOUTS:
        print(f"| {label} | {pages} | {wrong_pages(split, pages, a, b, gap, column)} |")
    found = len(find_glyphs(255 - cv2.imread(str(DOCS_PAGE), cv2.IMREAD_GRAYSCALE))[1])
    print(f"| {DOCS_PAGE.name}: glyphs found of 10 | 1 | {abs(found - 10)} |")


if __name__ == "__main__":
    main()

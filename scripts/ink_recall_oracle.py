"""What ink recall gives a perfect tracer, and a lossy one, as the pen widens: KanjiVG test-split
glyphs (3 or more strokes) drawn with a round pen of each width at 85 % of 64 px, scored with
their true centerlines as the traced strokes, then with the first third of each glyph's strokes
dropped. A rule for "ink no stroke traces" should give the truth about 1 at every width and the
lossy tracing much less.

Run: ``python scripts/ink_recall_oracle.py [--n 128] [--widths 1.5 3 5 7 9]`` (KanjiVG installed;
about a minute). The table is in docs/evaluation.md (stroke-level scores).
"""

from __future__ import annotations

import argparse

import numpy as np

from inktrace_train.data import Renderer
from inktrace_train.data.kanjivg import kanji_dir, parse_svg, split_of
from inktrace_train.evaluation.strokemetrics import ink_counts

KANJIVG_UNITS = 109.0  # KanjiVG's viewBox side
FILL = 0.85  # the glyph's share of the canvas, as predict's image rule places it


def glyphs(n: int, size: int) -> list:
    """The first ``n`` test-split glyphs with 3 or more strokes, in pixel coordinates."""
    out = []
    for path in sorted(kanji_dir().glob("*.svg")):
        if split_of(path.stem, 0.05, 0.05) != "test":
            continue
        strokes, _ = parse_svg(path.read_text(encoding="utf-8"))
        if len(strokes) >= 3:
            out.append([s * (size * FILL / KANJIVG_UNITS) + size * (1 - FILL) / 2 for s in strokes])
        if len(out) == n:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--widths", type=float, nargs="+", default=[1.5, 3, 5, 7, 9], help="full pen widths, px")
    args = parser.parse_args()
    render, chosen = Renderer(64), glyphs(args.n, 64)
    print(f"{len(chosen)} glyphs")
    head = ["pen (full width)", "truth: ink recall", "truth: ink recall 2 px"]
    head += ["a third of the strokes dropped: ink recall"]
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|")
    for width in args.widths:
        sums = np.zeros(4)  # total, truth traced (pen), truth traced (2 px), lossy traced (pen)
        for strokes in chosen:
            ink = render(strokes, np.full(len(strokes), width / 2))["ink"][0]
            truth = ink_counts(ink, strokes)
            lossy = ink_counts(ink, strokes[len(strokes) // 3 :])
            sums += [truth["ink_total"], truth["ink_traced"], truth["ink_traced_2px"], lossy["ink_traced"]]
        total, *traced = sums
        print(f"| {width:g} px | " + " | ".join(f"{t / total:.3f}" for t in traced) + " |", flush=True)


if __name__ == "__main__":
    main()

"""Choose a tracer constant on the validation split and the validation fonts, never on the test
set: every value of the constant traces the same model maps (each glyph's maps are computed
once), and each is scored as ``evaluate --split val`` scores the model.

Run: ``python scripts/tracer_sweep.py RUN --hanzi-dir HANZI --fonts-dir VALFONTS --name WIDE_JOIN
--values 0 1 1.5 2`` (``--n`` glyphs per set and per font, default 96). Prints one markdown row
per value: stroke F1 and ink recall of the clean, scan and brush validation sets, and the
fonts' count error, exact-count share, traced/true ratio and ink recall over all validation
fonts, and each font's count error. ``--any-fonts`` sweeps on every Japanese or Chinese font in
``--fonts-dir`` instead (candidate validation fonts, on validation characters). ``--views 1``
reads each glyph once (the constants before 2026-12-06 were chosen so; four views is the default).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Dict, List

import numpy as np

from inktrace_train.cli import evaluate
from inktrace_train.cli.views import add_views_option
from inktrace_train.evaluation import fontset, tracing
from inktrace_train.evaluation import tracer as tracer_module
from inktrace_train.evaluation.tracer import Tracer

SETS = ("clean", "scan", "brush")


def cached_maps(tracer: Tracer) -> None:
    """Each canvas's maps computed once, whatever the tracer's constants."""
    compute, memo = tracer.maps, {}

    def maps(canvas: np.ndarray) -> Dict[str, np.ndarray]:
        key = hashlib.sha1(np.ascontiguousarray(canvas, np.float32).tobytes()).hexdigest()
        if key not in memo:
            memo[key] = compute(canvas)
        return memo[key]

    tracer.maps = maps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run directory or checkpoint")
    p.add_argument("--hanzi-dir", required=True)
    p.add_argument("--fonts-dir", required=True, help="the validation fonts (data.fonts.FETCH_VAL)")
    p.add_argument("--name", required=True, help="a constant of evaluation.tracing, e.g. WIDE_JOIN")
    p.add_argument("--values", type=float, nargs="+", required=True)
    p.add_argument("--n", type=int, default=96)
    p.add_argument("--any-fonts", action="store_true", help="every Japanese or Chinese font in --fonts-dir")
    add_views_option(p)
    args = p.parse_args()
    if not hasattr(tracing, args.name):
        raise SystemExit(f"evaluation.tracing has no constant {args.name}")
    tracer = Tracer.from_checkpoint(args.run, views=args.views)
    cached_maps(tracer)
    data = evaluate.data_config(tracer.config)
    glyphs = {s: evaluate.test_glyphs(data, s, args.n, hanzi_dir=args.hanzi_dir, split="val") for s in SETS}
    fonts, notes, _ = fontset.font_set(
        args.fonts_dir,
        args.n,
        tracer.size,
        (data.val_fraction, data.test_fraction),
        data.cache_dir,
        args.hanzi_dir,
        "val",
        args.any_fonts,
    )
    for note in notes:  # fonts passed over (twins, a missing --hanzi-dir): the rows read without them
        print(f"note: {note}", file=sys.stderr)

    def model(canvas: np.ndarray) -> List[np.ndarray]:
        return [s.points for s in tracer.strokes(tracer.maps(canvas))]

    head = [f"{s} F1" for s in SETS] + [f"{s} ink" for s in SETS] + ["fonts err", "exact", "traced/true", "ink"]
    print(f"| {args.name} | " + " | ".join(head + list(fonts)) + " |")
    print("|---|" + "---|" * (len(head) + len(fonts)))
    for value in args.values:
        kind = type(getattr(tracing, args.name))  # an int constant stays an int
        for module in (tracing, tracer_module):  # the Tracer holds its own binding of the peaks
            if hasattr(module, args.name):
                setattr(module, args.name, kind(value))
        sets = {s: evaluate.model_scores(tracer, g) for s, g in glyphs.items()}
        rows = fontset.font_rows({"model": model}, fonts)
        overall = rows["model@fonts"]
        cells = [sets[s]["stroke_f1"] for s in SETS] + [sets[s]["ink_recall"] for s in SETS]
        cells += [overall[k] for k in ("count_error", "count_exact", "traced_true_ratio", "ink_recall")]
        cells += [rows[f"model@fonts/{f}"]["count_error"] for f in fonts]
        print(f"| {value:g} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()

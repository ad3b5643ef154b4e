"""How sure the fonts table's verdicts are: per font, the model's margin over the best classical
row (count error, exact-count share) with a paired bootstrap interval over the font's glyphs.

The fonts table (``scripts/results_table.py --fonts``) compares the model with the best classical
method of each column, font by font, on about 300 glyphs a font. This script traces the same
glyphs again, keeps each glyph's counts, and resamples the glyphs (the same resample for the model
and the classical method, so the differences are paired) to give a 95 % interval for each margin.
An interval that spans 0 is a verdict the font's glyphs cannot settle.

With ``--against OTHER`` (a second checkpoint) the margins are the model's over that model
instead, on the same glyphs: whether a new model's lead over the shipped one is more than the
glyphs can tell. Several (``--against A B``) give one table each, the model read once.
``--views`` and ``--against-views`` say how each reads a glyph (predict's
``--views``): one model against itself, ``--views 4 --against-views 1``, gives what the four
views buy. The last row pools every font's glyphs (for the classical rows, the method best
over all of them, as the fonts table's "all fonts" row).

Run: ``python scripts/font_margins.py CHECKPOINT --fonts-dir fonts --hanzi-dir
hanzi-writer-data-2.0.1.tgz [--font yusei-magic ...] [--split val] [--against OTHER]`` (6 min 21 s
for the eight test fonts here, 2026-12-05, in a slow spell of the VM with a short test run beside
it). Needs the ``eval`` extra (scikit-image) for the classical rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from inktrace_train.cli import evaluate
from inktrace_train.cli.views import add_views_option
from inktrace_train.evaluation import fontset
from inktrace_train.evaluation.tracer import Tracer
from inktrace_train.evaluation.views import DEFAULT_VIEWS

RESAMPLES = 10_000


def interval(model: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> str:
    """``model - other`` over the glyphs (per-glyph values), with its 95 % paired bootstrap interval."""
    picks = rng.integers(0, len(model), (RESAMPLES, len(model)))
    diffs = model[picks].mean(1) - other[picks].mean(1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return f"{model.mean() - other.mean():+.3f} [{low:+.3f}, {high:+.3f}]"


def margin_row(label: str, signed: Dict[str, np.ndarray]) -> str:
    """One table row from each row's per-glyph traced − true counts: the model minus the other row
    with the lowest count error, and minus the one with the highest exact share (the same one
    where there is only one other)."""
    errors = {name: np.abs(d).astype(float) for name, d in signed.items()}
    exact = {name: (d == 0).astype(float) for name, d in signed.items()}
    others = [name for name in signed if name != "model"]
    by_error = min(others, key=lambda name: errors[name].mean())
    by_exact = max(others, key=lambda name: exact[name].mean())
    rng = np.random.default_rng(0)  # per row: a font's interval does not depend on --font
    return (
        f"| {label} | {len(signed['model'])} | {interval(errors['model'], errors[by_error], rng)} ({by_error}) "
        f"| {interval(exact['model'], exact[by_exact], rng)} ({by_exact}) |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--fonts-dir", required=True)
    p.add_argument("--hanzi-dir", help="hanzi-writer-data, for the Chinese fonts' truth")
    p.add_argument("--font", nargs="+", help="these fonts only (default: every font found)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--n", type=int, default=512, help="glyphs per font at most (evaluate's default)")
    p.add_argument("--any-fonts", action="store_true", help="every Japanese or Chinese font in --fonts-dir")
    p.add_argument(
        "--against",
        metavar="OTHER",
        nargs="+",
        help="other checkpoints: margins over each, a table each (not the classical)",
    )
    add_views_option(p)
    add_views_option(p, "--against-views", "each glyph by OTHER", default=None)
    args = p.parse_args()
    if args.against_views is not None and not args.against:
        p.error("--against-views is how OTHER reads: give --against OTHER too")
    tracer = Tracer.from_checkpoint(args.checkpoint, views=args.views)
    tracers: Dict[str, Callable] = {"model": evaluate.model_tracer(tracer)}
    tables: Dict[str, List[str]] = {}  # each table's title -> the rows it compares the model with
    if args.against:
        views = DEFAULT_VIEWS if args.against_views is None else args.against_views
        for path in args.against:
            name = f"{Path(path).name}, views {views}"
            name = name if name not in tracers else f"{path}, views {views}"
            tracers[name] = evaluate.model_tracer(Tracer.from_checkpoint(path, views=views))
            tables[name] = [name]
    else:
        methods = evaluate.classical_methods()
        if not methods:
            raise SystemExit("the classical rows need scikit-image: pip install -e '.[eval]'")
        tracers.update({name: evaluate.classical_tracer(method) for name, method in methods.items()})
        tables["best classical"] = list(methods)
    data = evaluate.data_config(tracer.config)
    fractions = (data.val_fraction, data.test_fraction)
    fonts, notes, _ = fontset.font_set(
        args.fonts_dir, args.n, tracer.size, fractions, data.cache_dir, args.hanzi_dir, args.split, args.any_fonts
    )
    for note in notes:  # fonts passed over (twins, a missing --hanzi-dir): the rows read without them
        print(f"note: {note}", file=sys.stderr)
    # Several tables: the model is read once and each table printed at the end; one: row by row.
    single = len(tables) == 1
    if single:
        print_header(next(iter(tables)))
    per_font: Dict[str, Dict[str, np.ndarray]] = {}  # font -> each row's per-glyph traced − true counts
    for font, glyphs in fonts.items():
        if args.font and font not in args.font:
            continue
        true = np.array([g.true_count for g in glyphs])
        per_font[font] = {
            name: np.array([len(trace(g.canvas)) for g in glyphs]) - true for name, trace in tracers.items()
        }
        if single:
            print(margin_row(font, per_font[font]), flush=True)
        else:
            print(f"read {font} ({len(per_font)} fonts)", file=sys.stderr, flush=True)
    for title, others in tables.items():
        keep = ["model", *others]
        if not single:
            print_header(title)
            for font, signed in per_font.items():
                print(margin_row(font, {name: signed[name] for name in keep}))
        if per_font:
            pooled = {name: np.concatenate([signed[name] for signed in per_font.values()]) for name in keep}
            print(margin_row("**all fonts**", pooled), flush=True)
        if not single:
            print()


def print_header(title: str) -> None:
    print(f"| font | glyphs | count err: model − {title} [95 %] | exact: model − {title} [95 %] |")
    print("|---|---|---|---|")


if __name__ == "__main__":
    main()

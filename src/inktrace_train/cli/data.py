"""``python -m inktrace_train.data check PATH`` (or ``inktrace-data check PATH``): what training
on your stroke files would see, before you train.

Prints the glyphs per format and split, strokes per glyph and points per stroke, every file,
line or group that was skipped with the reason, and writes a PNG grid of rendered samples with
their skeleton and keypoint targets. Exit status 0 when there is a usable glyph, 1 when there is
none, 2 for a bad command line or path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

import numpy as np

from inktrace_train.config.schema import DataConfig
from inktrace_train.data.glyphs import SPLITS, order_key, split_of_key
from inktrace_train.errors import fail, reported

PROG = "inktrace-data"


def _stats(values: np.ndarray) -> str:
    if not len(values):
        return "none"
    return f"min {int(values.min())}, median {float(np.median(values)):g}, max {int(values.max())}"


def split_table(keys: List[str], formats: List[str], val_fraction: float, test_fraction: float) -> List[str]:
    """Glyphs per format (rows) and split (columns), with totals."""
    splits = [split_of_key(k, val_fraction, test_fraction) for k in keys]
    rows = sorted(set(formats)) + ["all"]
    lines = [f"{'glyphs':<10}" + "".join(f"{s:>9}" for s in SPLITS) + f"{'total':>9}"]
    for fmt in rows:
        pairs = [s for f, s in zip(formats, splits, strict=True) if fmt in ("all", f)]
        counts = [pairs.count(split) for split in SPLITS]
        lines.append(f"  {fmt:<8}" + "".join(f"{c:>9,}" for c in counts) + f"{sum(counts):>9,}")
    return lines


def check(args: argparse.Namespace) -> int:
    from inktrace_train.data import strokes

    stroke_set = strokes.load(args.path, args.cache_dir, option="", require_usable=False)
    a, usable = stroke_set.arrays, stroke_set.usable
    keys = a["keys"][usable].tolist()
    print(f"{args.path}: {stroke_set.summary()}")
    print("\n".join(split_table(keys, stroke_set.formats[usable].tolist(), args.val_fraction, args.test_fraction)))
    per_glyph = np.diff(a["glyph_offsets"])[usable]
    starts = a["glyph_offsets"][usable]
    ranges = [np.arange(s, s + n) for s, n in zip(starts, per_glyph, strict=True)]
    stroke_ids = np.concatenate(ranges) if ranges else np.zeros(0, np.int64)
    print(f"strokes per glyph: {_stats(per_glyph)}")
    print(f"points per stroke: {_stats(np.diff(a['stroke_offsets'])[stroke_ids])}")
    skips = stroke_set.skips
    print(f"skipped {len(skips)}:" if skips else "skipped: none")
    shown = skips if args.limit == 0 else skips[: args.limit]
    for s in shown:
        print(f"  {s.where}: {s.reason}" + (f": {s.detail}" if s.detail else ""))
    if len(shown) < len(skips):
        print(f"  ... and {len(skips) - len(shown)} more (--limit 0 lists all)")
    if not len(usable):
        fail(f"{args.path}: no usable glyph", code=1, prog=PROG)
    if args.samples:
        preview(stroke_set, keys, args)
    return 0


def preview(stroke_set, keys: List[str], args: argparse.Namespace) -> None:
    """Render the first ``--samples`` glyphs of the fixed pseudo-random order, as training would."""
    from inktrace_train.data.preview import render_samples, write_png
    from inktrace_train.data.render import Renderer
    from inktrace_train.data.strokes import counted
    from inktrace_train.train.build import make_augmenter

    a, d = stroke_set.arrays, DataConfig()
    so, go = a["stroke_offsets"], a["glyph_offsets"]
    chosen = sorted(range(len(keys)), key=lambda i: order_key(keys[i]))[: args.samples]
    glyphs = []
    for i in chosen:
        g = int(stroke_set.usable[i])
        glyphs.append((keys[i], [a["points"][so[s] : so[s + 1]] for s in range(go[g], go[g + 1])]))
    write_png(args.preview, render_samples(glyphs, make_augmenter(d), Renderer(d.img_size)))
    print(f"preview: {args.preview} ({counted(len(glyphs), 'sample')}: ink, skeleton, endpoints and junctions)")


def main(argv=None) -> None:
    d = DataConfig()
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("check", help="report on a stroke file or folder (what data=strokes data.path=PATH reads)")
    p.add_argument("path", type=Path, help="a .svg, .inkml or .ndjson file, or a folder of them")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="as data.val_fraction")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help="as data.test_fraction")
    p.add_argument("--cache-dir", default=d.cache_dir, help="as data.cache_dir")
    p.add_argument("--preview", type=Path, default=Path("strokes_preview.png"), help="the PNG grid to write")
    p.add_argument("--samples", type=int, default=16, help="glyphs in the preview (0: no preview)")
    p.add_argument("--limit", type=int, default=200, help="skipped items listed (0: all)")
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1 or not 0 <= args.test_fraction < 1 - args.val_fraction:
        fail("--val-fraction must be in (0, 1) and --test-fraction in [0, 1 - val-fraction)", prog=PROG)
    if args.samples < 0 or args.limit < 0:
        fail("--samples and --limit must be >= 0", prog=PROG)
    if args.samples and args.preview.suffix.lower() != ".png":
        fail(f"--preview {args.preview}: name a .png file (or --samples 0 for no preview)", prog=PROG)
    with reported(PROG, code=2):
        raise SystemExit(check(args))


if __name__ == "__main__":
    main()

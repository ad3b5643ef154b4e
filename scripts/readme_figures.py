"""Write the README's tracing figures: test-split glyphs of a set rendered as dark ink on paper,
traced by a checkpoint with ``inktrace_train.predict`` (its panel PNG and SVG go to docs/).

Run: ``python scripts/readme_figures.py CHECKPOINT [--out docs] [--set clean] [--glyphs 3 17]
[--hanzi-dir PATH]``; files are named ``<set>_glyph_<i>.png`` / ``.svg``. With ``--set fonts
--fonts-dir DIR [--font NAME]`` the glyphs are the fonts set's (:mod:`inktrace_train.data.fonts`):
glyph i is the font's i-th test-split character, rendered as the set renders it and read by
``predict`` through the same image rule; files ``fonts_<font>_glyph_<i>.png`` / ``.svg``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from inktrace_train.cli.evaluate import FONT_SET, SETS, test_glyphs
from inktrace_train.cli.predict import main as predict
from inktrace_train.config.schema import DataConfig


def set_images(args) -> dict:
    """{file stem: grey uint8 image (dark ink on paper)} of the chosen glyphs of a 64x64 set."""
    glyphs = test_glyphs(DataConfig(), args.subset, max(args.glyphs) + 1, hanzi_dir=args.hanzi_dir)
    return {f"{args.subset}_glyph_{i}": np.round((1 - glyphs[i][2]) * 255).astype(np.uint8) for i in args.glyphs}


def font_images(args) -> dict:
    """{file stem: the font's rendering} of the chosen glyphs of one font of the fonts set."""
    from inktrace_train.data.fonts import find_fonts, split_strokes

    data = DataConfig()
    package = next((p for p in find_fonts(args.fonts_dir)[0] if p.font.name == args.font), None)
    if package is None:
        raise SystemExit(f"--font {args.font}: not in {args.fonts_dir}")
    characters = split_strokes(
        package.font.language, data.val_fraction, data.test_fraction, data.cache_dir, args.hanzi_dir
    )
    images = [image for image in (package.render(c) for c, _ in characters) if image is not None]
    return {f"fonts_{args.font}_glyph_{i}": images[i] for i in args.glyphs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--set", default="clean", choices=(*SETS, FONT_SET), dest="subset")
    parser.add_argument("--glyphs", type=int, nargs="+", default=[3])
    parser.add_argument("--hanzi-dir")
    parser.add_argument("--fonts-dir", help="the fonts set's packages (--set fonts)")
    parser.add_argument("--font", default="klee-one", help="the font of the fonts set to draw (--set fonts)")
    args = parser.parse_args()
    if args.subset == FONT_SET and args.fonts_dir is None:
        parser.error("--set fonts needs --fonts-dir")
    images = font_images(args) if args.subset == FONT_SET else set_images(args)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for stem, image in images.items():
            paths.append(str(Path(tmp) / f"{stem}.png"))
            cv2.imwrite(paths[-1], image)
        predict([args.checkpoint, *paths, "--out", args.out, "--single"])  # one glyph an image: its panel


if __name__ == "__main__":
    main()

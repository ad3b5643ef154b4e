"""Write the README's tracing figures: test-split glyphs of a set rendered as dark ink on paper,
traced by a checkpoint with ``inktrace_train.predict`` (its panel PNG and SVG go to docs/).

Run: ``python scripts/readme_figures.py CHECKPOINT [--out docs] [--set clean] [--glyphs 3 17]
[--hanzi-dir PATH]``; files are named ``<set>_glyph_<i>.png`` / ``.svg``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from inktrace_train.cli.evaluate import SETS, test_glyphs
from inktrace_train.cli.predict import main as predict
from inktrace_train.config.schema import DataConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--set", default="clean", choices=SETS, dest="subset")
    parser.add_argument("--glyphs", type=int, nargs="+", default=[3])
    parser.add_argument("--hanzi-dir")
    args = parser.parse_args()
    glyphs = test_glyphs(DataConfig(), args.subset, max(args.glyphs) + 1, hanzi_dir=args.hanzi_dir)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in args.glyphs:
            path = Path(tmp) / f"{args.subset}_glyph_{i}.png"
            cv2.imwrite(str(path), np.round((1 - glyphs[i][2]) * 255).astype(np.uint8))
            paths.append(str(path))
        predict([args.checkpoint, *paths, "--out", args.out])


if __name__ == "__main__":
    main()

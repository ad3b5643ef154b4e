"""Write the README's tracing figure: test-split glyphs rendered as dark ink on paper, traced by a
checkpoint with ``inktrace_train.predict`` (its panel PNG and SVG go to docs/).

Run: ``python scripts/readme_figures.py CHECKPOINT [--out docs] [--glyphs 3 17]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from inktrace_train.config import DataConfig
from inktrace_train.evaluate import test_glyphs
from inktrace_train.predict import main as predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--glyphs", type=int, nargs="+", default=[3])
    args = parser.parse_args()
    glyphs = test_glyphs(DataConfig(), max(args.glyphs) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in args.glyphs:
            ink = glyphs[i][1]["ink"][0]
            path = Path(tmp) / f"test_glyph_{i}.png"
            cv2.imwrite(str(path), np.round((1 - ink) * 255).astype(np.uint8))
            paths.append(str(path))
        predict([args.checkpoint, *paths, "--out", args.out])


if __name__ == "__main__":
    main()

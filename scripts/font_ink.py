"""Fonts as training ink: label train-split characters of your fonts with their strokes and write
them as a font-ink file for ``data.font_ink`` (:mod:`inktrace_train.data.fontink`).

Two ways to label a glyph. ``--labels model`` (with MODEL): the model traces it, and it is kept
when the model traces as many strokes as the character has (KanjiVG's count for a Japanese font,
hanzi-writer-data's for a Chinese one) and leaves none of its ink untraced (ink recall at least
``fontfit.INK_RECALL``). ``--labels fitted`` (no model): the character's own strokes are fitted onto the
font's ink (:mod:`inktrace_train.evaluation.fontfit`), and kept when they lie on it and trace it
all, so glyphs a model misreads are labelled too. Either way the strokes become the glyph's
centerlines, the font's ink its outlines, once per weight of ``fontink.GROW``. The fonts of the
fonts set and the validation fonts are refused: a font that scores or chooses a model must never
train one. So is, with ``--scored-fonts fonts valfonts``, a font that draws the same ideographs
as one of the packages there under another name (``kaisei-tokumin`` draws ``kaisei-decol``'s:
:func:`~inktrace_train.data.fonts.twin_of`).

Run: ``python scripts/font_ink.py MODEL --fonts-dir trainfonts --hanzi-dir
hanzi-writer-data-2.0.1.tgz --per-font 600 --scored-fonts fonts valfonts --out font_ink.npz``
(every Japanese or Chinese @fontsource package in the folder; about 0.05 s a character on a 2-core
CPU read once, ``--views 1``,
about twice that in the default four views; ``--labels fitted``
about 0.7 s), then train with ``data.font_ink=font_ink.npz``. Needs the ``eval`` extra
(fontTools, scikit-image).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from inktrace_train.cli import evaluate
from inktrace_train.cli.views import add_views_option
from inktrace_train.config.schema import DataConfig
from inktrace_train.data import fontink
from inktrace_train.data.brush import BrushGlyph
from inktrace_train.data.glyphs import DataError
from inktrace_train.errors import fail, reported

try:
    from inktrace_train.data.fonts import FONTS, VAL_FONTS, FontPackage, find_fonts, split_strokes, twin_of
    from inktrace_train.evaluation.fontfit import fitted_strokes, traces_all
except ModuleNotFoundError as e:  # fontTools reads the fonts
    fail(f"{e.name} is missing: install the eval extra (pip install -e '.[eval]')", prog="font_ink.py")
from inktrace_train.evaluation.imaging import place, read_ink
from inktrace_train.evaluation.tracer import Tracer
from inktrace_train.evaluation.tracing import Stroke

INK_LEVEL = 90  # font image coverage (of 255) that counts as ink for the outlines
PROG = "font_ink.py"


def traced(tracer: Tracer, canvas: np.ndarray, true_count: int) -> Optional[List[np.ndarray]]:
    """The model's strokes of a glyph canvas, or None when it does not trace it right."""
    strokes = [s.points for s in tracer.strokes(tracer.maps(canvas))]
    return strokes if len(strokes) == true_count and traces_all(canvas, strokes) else None


def label(
    image: np.ndarray, strokes: Sequence[np.ndarray], size: int, tracer: Optional[Tracer]
) -> Optional[List[Tuple[int, BrushGlyph]]]:
    """One font image's brush glyphs, each with its weight (px grown, of fontink.GROW; a weight
    whose outlines cannot be drawn is left out), or None when the glyph is not labelled: labelled
    by the model's traces with ``tracer``, else by the character's ``strokes`` fitted to its ink."""
    ink = read_ink(image)
    canvas, placement = place(ink, size)
    if placement is None:
        return None
    found = traced(tracer, canvas, len(strokes)) if tracer is not None else fitted_strokes(canvas, strokes)
    if found is None:
        return None
    medians = [fontink.smooth(placement.to_image(Stroke(points, float("nan"))).points) for points in found]
    glyphs = []
    for grow in fontink.GROW:
        outlines = fontink.stroke_outlines(ink >= INK_LEVEL, medians, grow)
        if outlines is not None:
            glyphs.append((grow, fontink.to_unit(medians, outlines)))
    return glyphs or None


def label_font(
    package: FontPackage,
    characters: Sequence[Tuple[str, List[np.ndarray]]],
    per_font: int,
    size: int,
    tracer: Optional[Tracer],
) -> Tuple[List[BrushGlyph], List[str], int]:
    """The kept glyphs and their names (font/char/grow) of the first ``per_font`` characters the
    font has, and how many were tried."""
    glyphs, names, tried = [], [], 0
    for char, strokes in characters:
        if tried == per_font:
            break
        image = package.render(char)
        if image is None:
            continue
        tried += 1
        for grow, glyph in label(image, strokes, size, tracer) or []:
            glyphs.append(glyph)
            names.append(f"{package.font.name}/{char}/{grow}")
    return glyphs, names, tried


def refuse_twins(fonts_dir: str, packages: Sequence, scored_dirs: Sequence[str]) -> None:
    """DataError naming each training font that draws the ideographs of a package in ``scored_dirs``."""
    if not scored_dirs:
        print(
            "note: without --scored-fonts (the folders of the test and validation fonts), a training font that "
            "draws one of theirs under another name is not caught",
            file=sys.stderr,
        )
    scored = [
        pkg
        for folder in scored_dirs
        for pkg in find_fonts(folder, "val", any_fonts=True, keep_twins=True, flag="--scored-fonts")[0]
    ]
    twins = [(pkg, twin_of(pkg, scored)) for pkg in packages]
    named = [f"{pkg.font.name} ({twin.font.name}, in {twin.source.parent})" for pkg, twin in twins if twin]
    if named:
        raise DataError(
            f"--fonts-dir {fonts_dir}: {'; '.join(named)}: the same ideographs as a font that scores or chooses "
            "models, under another name; take them out of the folder"
        )


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="a run directory or checkpoint (the model that traces the fonts)")
    p.add_argument("--fonts-dir", required=True, help="@fontsource packages (.tgz of `npm pack`, or folders)")
    p.add_argument("--hanzi-dir", help="hanzi-writer-data (the Chinese fonts' strokes)")
    p.add_argument(
        "--labels",
        choices=("model", "fitted"),
        default="model",
        help="the model's traces of the glyphs it reads right, or the characters' own strokes fitted to the ink",
    )
    p.add_argument("--per-font", type=int, default=600, help="train-split characters tried per font")
    p.add_argument(
        "--split-fractions",
        nargs=2,
        type=float,
        metavar=("VAL", "TEST"),
        help="with --labels fitted: the data.val_fraction and data.test_fraction the font ink will train "
        "beside (default: DataConfig's); --labels model takes the model's",
    )
    p.add_argument(
        "--scored-fonts",
        nargs="+",
        default=[],
        metavar="DIR",
        help="folders of the fonts that score or choose models (the fonts set's, the validation fonts'): a "
        "training font drawing the same ideographs as one of them is refused",
    )
    p.add_argument("--out", required=True, help="the font-ink file to write (.npz)")
    add_views_option(p, what="each font glyph (with --labels model)")
    args = p.parse_args(argv)
    with reported(PROG):
        if (args.model is None) == (args.labels == "model"):
            raise DataError("--labels model needs MODEL (the model that traces the fonts); --labels fitted takes none")
        if args.split_fractions and args.model:
            raise DataError("--split-fractions is for --labels fitted: --labels model takes the model's split")
        val, test = args.split_fractions or (DataConfig.val_fraction, DataConfig.test_fraction)
        if min(val, test) < 0 or val + test >= 1:
            raise DataError(f"--split-fractions {val} {test}: two shares >= 0 that sum to less than 1")
        if not Path(args.fonts_dir).expanduser().is_dir():
            raise DataError(f"--fonts-dir {args.fonts_dir}: no such folder (get fonts: `npm pack @fontsource/NAME`)")
        packages, notes = find_fonts(args.fonts_dir, "val", any_fonts=True)
        scored = {f.name for f in FONTS + VAL_FONTS}
        refused = [pkg.font.name for pkg in packages if pkg.font.name in scored]
        if refused:
            raise DataError(
                f"--fonts-dir {args.fonts_dir}: {', '.join(refused)} score or choose models (the fonts set, the "
                "validation fonts) and must not train one: take them out of the folder"
            )
        refuse_twins(args.fonts_dir, packages, args.scored_fonts)
        tracer = Tracer.from_checkpoint(args.model, views=args.views) if args.model else None
        if tracer is not None:
            data, size = evaluate.data_config(tracer.config), tracer.size
        else:
            data = DataConfig(val_fraction=val, test_fraction=test)
            size = data.img_size
        glyphs, names, start = [], [], time.time()
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        for package in packages:
            language = package.font.language
            if language == "zh" and args.hanzi_dir is None:
                print(f"note: {package.font.name} (Chinese) needs --hanzi-dir for its strokes; passed over")
                continue
            characters = split_strokes(
                language, data.val_fraction, data.test_fraction, data.cache_dir, args.hanzi_dir, "train"
            )
            kept, kept_names, tried = label_font(package, characters, args.per_font, size, tracer)
            glyphs += kept
            names += kept_names
            chars = len({n.rsplit("/", 1)[0] for n in kept_names})
            print(f"{package.font.name}: {chars} of {tried} characters labelled ({time.time() - start:.0f} s)")
        fontink.save(Path(args.out), glyphs, names)
        print(f"{len(glyphs)} glyphs -> {args.out}")


if __name__ == "__main__":
    main()

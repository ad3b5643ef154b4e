"""``python -m inktrace_train.evaluate CHECKPOINT``: score a model and the classical baselines
on held-out test-split glyphs, as a table (a second one for the fonts set; and ``--json``).

Three test sets (``--set clean|scan|brush|all``), each of glyphs never trained or validated on
(the test split, by codepoint), augmented and rendered once from a fixed seed with the
checkpoint's geometry settings and the pinned pens of :data:`TEST_PEN`, so every checkpoint is
scored on the same images whatever ink it trained on:

- ``clean``: the first ``--n`` KanjiVG test glyphs, as training renders them;
- ``scan``: the same glyphs made scan-like (:mod:`inktrace_train.data.degrade`: blur, noise,
  specks, uneven paper, faint and broken ink), every one of them;
- ``brush``: the first ``--n`` hanzi-writer-data test characters (Kaiti brush outlines), from
  ``--hanzi-dir`` or the checkpoint's ``data.hanzi_dir`` (``all`` skips it, saying so, when
  neither is given);
- ``strokes``: your own stroke files (``data=strokes``): the first ``--n`` glyphs of their test
  split (``data.test_fraction`` of their keys, never trained or validated on), from
  ``--data-path`` or the checkpoint's ``data.path``, rendered as ``clean`` (``all`` includes it
  when either is given).

And ``fonts``, out of distribution: test-split characters rendered from real CJK fonts
(``--fonts-dir``, :mod:`inktrace_train.evaluation.fontset`), the first ``--n`` each font has, read
through ``predict``'s image rule and scored on their stroke counts and ink recall, in a second
table (``all`` skips the set, saying so, without ``--fonts-dir``). ``--any-fonts`` scores every
Japanese or Chinese @fontsource package in the folder, not only the set's: your own fonts, or
candidate validation fonts with ``--split val``.

Rows: the model (its predicted maps, read in four views as ``predict`` reads them, ``--views 1``
once: :mod:`~inktrace_train.evaluation.views`, traced by :mod:`tracing`), and -- with
scikit-image installed (``pip install -e ".[eval]"``) -- the classical answer: the input
thresholded (at 0.5 as the issue states, and for ``thin`` also by Otsu's method, with and without
a 3x3 median filter first), then ``skimage.morphology.skeletonize`` or ``thin``, endpoints and
junctions from the pixel graph, strokes by the same tracer without the
model's junctions and tangents.

Columns: skeleton F1 at 0 and 1 px, endpoint and junction F1 (one-to-one within 2 px), tangent
angular error on true skeleton pixels and half-width MAE on ink pixels (model only), stroke
recovery precision / recall / F1, ink recall (the input's skeleton under the traced strokes drawn
with its own pen) and its fixed 2 px form, the share of lossy glyphs (more than 10 % of the input's
skeleton untraced), stroke-count error and Chamfer distance (:mod:`strokemetrics`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from inktrace_train.cli.quiet import loader_quiet
from inktrace_train.cli.views import add_views_option
from inktrace_train.config.schema import HANZI_FETCH, DataConfig
from inktrace_train.data import KanjiVGStrokes, Renderer
from inktrace_train.data import degrade as scan
from inktrace_train.data.glyphs import DataError
from inktrace_train.data.hanzi import HanziStrokes
from inktrace_train.data.strokes import StrokeFiles
from inktrace_train.errors import UserError, fail, reported
from inktrace_train.evaluation.metrics import (
    KEYPOINT_TOLERANCE,
    TARGET_PEAK_THRESHOLD,
    f1_from_counts,
    match_counts,
    peaks,
)
from inktrace_train.evaluation.strokemetrics import ink_counts, pooled_scores, stroke_scores
from inktrace_train.evaluation.tracer import Tracer
from inktrace_train.evaluation.tracing import KEYPOINT_PEAK, junctions_from_pixels, thin, trace
from inktrace_train.run.cores import available_cores
from inktrace_train.train.build import make_augmenter

PROG = "inktrace_train.evaluate"
TEST_STREAM = 2  # the random stream of test samples (0 training, 1 validation)
SETS = ("clean", "scan", "brush", "strokes")
FONT_SET = "fonts"  # the out-of-distribution set: other columns, its own table


def test_glyphs(
    data: DataConfig,
    subset: str,
    n: int,
    seed: int = 0,
    hanzi_dir: Optional[str] = None,
    split: str = "test",
    stroke_path: Optional[str] = None,
):
    """(strokes, targets, input ink (H, W)) of the first n glyphs of a set and split (``val``
    for choosing settings, ``test`` for scores), each augmented (and for ``scan`` degraded)
    once from (seed, i). ``stroke_path``: the stroke files of the ``strokes`` set."""
    fractions = (data.val_fraction, data.test_fraction)
    if subset == "brush":
        source = HanziStrokes(split, *fractions, source=hanzi_dir, cache_dir=data.cache_dir)
    elif subset == "strokes":
        try:
            source = StrokeFiles(split, *fractions, stroke_path, data.cache_dir, option="--data-path")
        except DataError as e:
            if "is empty" not in str(e):
                raise
            raise DataError(
                f"--data-path={stroke_path}: no {split}-split glyph at the checkpoint's data.val_fraction="
                f"{data.val_fraction} and data.test_fraction={data.test_fraction} (the split is training's: "
                "a model trained with a larger one holds more of your glyphs out)"
            ) from None
    else:
        source = KanjiVGStrokes(split, *fractions, data.cache_dir)
    augment = make_augmenter(data)
    render = Renderer(data.img_size)
    glyphs = []
    for i in range(min(n, len(source))):
        rng = np.random.default_rng([seed, TEST_STREAM, 0, i])
        strokes, pen = augment(source.glyph(i, rng), rng)
        targets = render(strokes, pen)
        ink = targets["ink"]
        if subset == "scan":  # its own generator: the glyphs stay those of the clean set
            fields = scan.draw(np.random.default_rng([seed, TEST_STREAM, 1, i]), data.img_size)
            ink = scan.apply(torch.from_numpy(ink)[None], {k: torch.from_numpy(v)[None] for k, v in fields.items()})
            ink = ink[0].numpy()
        glyphs.append((strokes, targets, ink[0]))
    return glyphs


def point_map(points: np.ndarray, size: int) -> np.ndarray:
    grid = np.zeros((size, size), bool)
    cells = np.floor(np.asarray(points).reshape(-1, 2)).astype(int)
    cells = cells[((cells >= 0) & (cells < size)).all(1)]
    grid[cells[:, 1], cells[:, 0]] = True
    return grid


def skeleton_ends(skeleton: np.ndarray) -> np.ndarray:
    """Pixels of a thin skeleton with exactly one neighbour (the classical endpoints)."""
    padded = np.pad(skeleton, 1).astype(np.uint8)
    neighbours = sum(np.roll(np.roll(padded, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - padded
    return (skeleton & (neighbours[1:-1, 1:-1] == 1)).astype(bool)


class Scores:
    """Match counts and error sums of one method over the glyphs."""

    def __init__(self) -> None:
        self.counts: Dict[str, np.ndarray] = {}
        self.errors: Dict[str, List[float]] = {}
        self.strokes: List[Dict[str, float]] = []

    def match(self, name: str, pred: np.ndarray, target: np.ndarray, tol: int) -> None:
        got = match_counts(torch.from_numpy(pred[None]), torch.from_numpy(target[None]), tol)
        self.counts[name] = self.counts.get(name, np.zeros(3)) + np.array([int(c) for c in got])

    def result(self) -> Dict[str, float]:
        out = {name: f1_from_counts(*c) for name, c in self.counts.items()}
        out.update({name: float(np.mean(v)) for name, v in self.errors.items()})
        out.update(pooled_scores(self.strokes))
        return out


def score_glyph(scores: Scores, strokes, targets, image, skeleton, ends, junctions, traced) -> None:
    """Skeleton and keypoint matches and stroke scores of one glyph for one method."""
    true_skeleton = targets["skeleton"][0] > 0.5
    scores.match("skeleton_f1_0px", skeleton, true_skeleton, 0)
    scores.match("skeleton_f1_1px", skeleton, true_skeleton, 1)
    heat = torch.from_numpy(targets["keypoints"])
    true_points = peaks(heat, TARGET_PEAK_THRESHOLD).numpy()
    scores.match("endpoint_f1", ends, true_points[0], KEYPOINT_TOLERANCE)
    scores.match("junction_f1", junctions, true_points[1], KEYPOINT_TOLERANCE)
    polylines = [s.points for s in traced]
    scores.strokes.append({**stroke_scores(polylines, strokes), **ink_counts(image, polylines)})


def model_scores(tracer: Tracer, glyphs) -> Dict[str, float]:
    scores = Scores()
    size = tracer.size
    for strokes, targets, image in glyphs:
        maps = tracer.maps(image)
        traced = tracer.strokes(maps)
        skeleton = maps["skeleton"] >= 0.5
        if "keypoints" in maps:
            found = peaks(torch.from_numpy(maps["keypoints"]), KEYPOINT_PEAK).numpy()
        else:
            found = np.zeros((2, size, size), bool)
        score_glyph(scores, strokes, targets, image, skeleton, found[0], found[1], traced)
        on = targets["skeleton"][0] > 0.5
        if on.any():  # axial angle difference, degrees
            pred = 0.5 * np.arctan2(maps["tangent"][1], maps["tangent"][0])[on]
            true = 0.5 * np.arctan2(targets["tangent"][1], targets["tangent"][0])[on]
            diff = np.abs((pred - true + np.pi / 2) % np.pi - np.pi / 2)
            scores.errors.setdefault("tangent_error_deg", []).extend(np.degrees(diff).tolist())
        ink = targets["ink"][0] >= 0.5
        if "half_width" in maps and ink.any():
            scores.errors.setdefault("width_mae_px", []).extend(
                np.abs(maps["half_width"][ink] - targets["width"][0][ink]).tolist()
            )
    return scores.result()


def classical_scores(skeletonize: Callable[[np.ndarray], np.ndarray], glyphs) -> Dict[str, float]:
    scores = Scores()
    for strokes, targets, image in glyphs:
        size = image.shape[-1]
        skeleton = thin(skeletonize(image))
        junctions = junctions_from_pixels(skeleton)
        traced = trace(skeleton)
        score_glyph(
            scores, strokes, targets, image, skeleton, skeleton_ends(skeleton), point_map(junctions, size), traced
        )
    return scores.result()


COLUMNS = (
    ("skeleton_f1_0px", "skel F1@0"),
    ("skeleton_f1_1px", "skel F1@1"),
    ("endpoint_f1", "end F1"),
    ("junction_f1", "junc F1"),
    ("tangent_error_deg", "tangent err°"),
    ("width_mae_px", "width MAE"),
    ("stroke_f1", "stroke F1"),
    ("ink_recall", "ink recall"),
    ("ink_recall_2px", "ink rec 2px"),
    ("lossy_glyphs", "lossy glyphs"),
    ("stroke_precision", "stroke P"),
    ("stroke_recall", "stroke R"),
    ("stroke_count_error", "count err"),
    ("chamfer_px", "chamfer px"),
)


def table(rows: Dict[str, Dict[str, float]]) -> str:
    head = "| method | set | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for key, values in rows.items():
        method, subset = key.split("@")
        cells = [f"{values[k]:.3f}" if k in values and math.isfinite(values[k]) else "-" for k, _ in COLUMNS]
        lines.append(f"| {method} | {subset} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def classical_methods() -> Dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The classical skeletons of an input image (H, W) in [0, 1], by row name; empty without
    scikit-image. The issue's baselines threshold at 0.5; on scans a global 0.5 loses faint ink
    and keeps dark paper, so the rows also include thinning after Otsu's threshold, and after a
    3x3 median filter (specks, noise) then Otsu: the goal is measured against the best row."""
    try:
        from skimage.filters import threshold_otsu
        from skimage.morphology import skeletonize
        from skimage.morphology import thin as sk_thin
    except ImportError:
        return {}

    def otsu(image: np.ndarray) -> np.ndarray:
        return image >= threshold_otsu(image) if image.max() > image.min() else image >= 0.5

    def median(image: np.ndarray) -> np.ndarray:
        return cv2.medianBlur(np.round(image * 255).astype(np.uint8), 3).astype(np.float32) / 255.0

    return {
        "skeletonize": lambda image: skeletonize(image >= 0.5),
        "thin": lambda image: sk_thin(image >= 0.5),
        "thin, Otsu": lambda image: sk_thin(otsu(image)),
        "thin, median + Otsu": lambda image: sk_thin(otsu(median(image))),
    }


# The pens of the clean, scan and brush test sets, pinned: whatever ink a checkpoint trained on
# (data.pen_*, angular, outline_ink, hairlines: issue 21), every checkpoint is scored on the same images,
# those of the README's results (the plain round pen, 1.2-3.0 px).
TEST_PEN = {
    "angular": 0.0,
    "pen_width_min": 1.2,
    "pen_width_max": 3.0,
    "pen_width_sampling": "uniform",
    "pen_pressure": 0.0,
    "pen_nib": 0.0,
    "pen_flat_caps": 0.0,
    "outline_ink": 0.0,
    "hairlines": 0.0,
    "cursive_joins": 0.0,
}


def data_config(config: Optional[dict]) -> DataConfig:
    """The checkpoint's data options (its split, canvas and geometry), with the test sets' pens."""
    stored = (config or {}).get("data") or {}
    names = {f.name for f in fields(DataConfig)}
    return DataConfig(**{**{k: v for k, v in stored.items() if k in names}, **TEST_PEN})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a checkpoint file, or a run directory (its last stage's best)")
    sets = (*SETS, FONT_SET, "all")
    p.add_argument("--set", default="all", choices=sets, dest="subset", help="test set (default all)")
    p.add_argument("--n", type=int, default=512, help="test glyphs per set, and per font (default 512)")
    p.add_argument("--hanzi-dir", help="hanzi-writer-data (.tgz or folder) for the brush set and the Chinese fonts")
    p.add_argument("--fonts-dir", help="the @fontsource packages of the fonts set (.tgz files or folders)")
    p.add_argument(
        "--data-path", help="your stroke files for the strokes set (default: the checkpoint's data.path, if any)"
    )
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "val"),
        help="test (default): the scores; val: validation characters, and the validation fonts"
        " (data.fonts.VAL_FONTS), for choosing settings without looking at the test set",
    )
    p.add_argument(
        "--any-fonts",
        action="store_true",
        help="score every @fontsource package of a Japanese or Chinese font in --fonts-dir, not only the"
        " set's (truth by the language its metadata.json lists: KanjiVG, else hanzi-writer-data); with"
        " --split val, candidate validation fonts",
    )
    p.add_argument("--json", help="also write the table as JSON here")
    p.add_argument(
        "--workers",
        type=int,
        default=available_cores(),
        help="processes for the classical rows, beside the model's (default: the cores here, %(default)s;"
        " 0: in this process)",
    )
    p.add_argument("--device", default="cpu")
    add_views_option(p)
    return p


def load_font_set(args, data: DataConfig, hanzi_dir: Optional[str], size: int) -> Tuple[Optional[dict], Dict[str, str]]:
    """The fonts set's glyphs by font (before any scoring, so a bad ``--fonts-dir`` costs no
    minutes) and their styles; with ``--set all`` and no ``--fonts-dir`` or no fontTools, no
    glyphs (None), saying so."""
    try:  # fontTools is an extra (eval): the other sets do without it
        from inktrace_train.data.fonts import FETCH, FETCH_VAL
        from inktrace_train.evaluation.fontset import font_set
    except ModuleNotFoundError as e:
        message = f'the fonts set needs {e.name}: pip install -e ".[eval]"'
        if args.subset == FONT_SET:
            raise UserError(message) from None
        print(f"(no fonts rows: {message})")
        return None, {}
    if args.fonts_dir is None:
        fetch = FETCH if args.split == "test" else FETCH_VAL
        message = f"the fonts set needs --fonts-dir DIR (get the fonts: `{fetch}`)"
        if args.subset == FONT_SET:
            raise UserError(message)
        print(f"(no fonts rows: {message})")
        return None, {}
    fractions = (data.val_fraction, data.test_fraction)
    fonts, notes, styles = font_set(
        args.fonts_dir, args.n, size, fractions, data.cache_dir, hanzi_dir, args.split, args.any_fonts
    )
    for note in notes:
        print(f"(fonts: {note})")
    if not fonts:
        raise UserError(f"--fonts-dir {args.fonts_dir}: no font of the set could be scored ({'; '.join(notes)})")
    found = ", ".join(f"{name} {len(glyphs)}" for name, glyphs in fonts.items())
    print(f"fonts: {found} {args.split}-split glyphs")
    return fonts, styles


def model_tracer(tracer: Tracer) -> Callable[[np.ndarray], List[np.ndarray]]:
    return lambda canvas: [s.points for s in tracer.strokes(tracer.maps(canvas))]


def classical_tracer(method: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], List[np.ndarray]]:
    return lambda canvas: [s.points for s in trace(thin(method(canvas)))]


def fonts_table(rows: dict, styles: Dict[str, str]) -> str:
    from inktrace_train.evaluation import fontset  # fontTools: an extra, loaded with the fonts

    return fontset.table(rows, styles)


def font_rows_of(tracers: dict, fonts: Optional[dict]) -> dict:
    """The fonts set's rows of ``tracers`` (none without fonts)."""
    if not fonts:
        return {}
    from inktrace_train.evaluation import fontset

    return fontset.font_rows(tracers, fonts)


@contextlib.contextmanager
def one_thread():
    """The model's rows on one thread: one glyph at a time is too little work to split, the other
    cores go to the classical rows' workers, and --workers 0 gives the same scores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- the classical rows, in worker processes -------------------------------------------------
_SHARED: Dict[str, Any] = {}  # a process's test glyphs and fonts, for the jobs it runs


def _share(glyphs: Dict[str, list], fonts: Optional[dict], threads: Optional[int]) -> None:
    """A worker's start (and the in-process path's): the glyphs, once, instead of with every job."""
    if threads:
        torch.set_num_threads(threads)  # its small torch ops need no second thread, which would only spin
    _SHARED.update(glyphs=glyphs, fonts=fonts)


def _classical_job(name: str, subset: str) -> Dict[str, Dict[str, float]]:
    """One classical method's rows on one set (``fonts``: its per-font and overall rows)."""
    method = classical_methods()[name]
    if subset == FONT_SET:
        return font_rows_of({name: classical_tracer(method)}, _SHARED["fonts"])
    return {f"{name}@{subset}": classical_scores(method, _SHARED["glyphs"][subset])}


@contextlib.contextmanager
def classical_rows(names: List[str], glyphs: Dict[str, list], fonts: Optional[dict], workers: int):
    """Scores every classical method on every set, in ``workers`` processes while the caller
    scores the model (0: here, when the caller collects). Yields a function that returns the
    rows by method and set, waiting for them."""
    jobs = [(name, subset) for name in names for subset in [*glyphs, *([FONT_SET] if fonts else [])]]
    # what the classical rows read of the targets: the rest (dense maps) stays here
    shared = {
        k: [(st, {t: tg[t] for t in ("skeleton", "keypoints")}, im) for st, tg, im in v] for k, v in glyphs.items()
    }
    if workers == 0 or not jobs:
        _share(shared, fonts, None)
        try:
            yield lambda: {job: _classical_job(*job) for job in jobs}
        finally:
            _SHARED.clear()  # the glyphs go with the call (evaluate runs in process under the tests' runner)
        return
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_share, initargs=(shared, fonts, 1)
    )
    try:
        pending = {job: pool.submit(_classical_job, *job) for job in jobs}
        yield lambda: {job: future.result() for job, future in pending.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    if args.n < 1:
        fail(f"--n={args.n}: must be at least 1", 2, prog=PROG)
    if args.workers < 0:
        fail(f"--workers={args.workers}: must be 0 (in this process) or more", 2, prog=PROG)
    with loader_quiet(), reported(PROG):
        tracer = Tracer.from_checkpoint(args.checkpoint, args.device, views=args.views)
        data = data_config(tracer.config)
        hanzi_dir = args.hanzi_dir or data.hanzi_dir
        subsets = SETS if args.subset == "all" else tuple(s for s in (args.subset,) if s in SETS)
        stroke_path = args.data_path or data.path
        if "strokes" in subsets and stroke_path is None:
            if args.subset == "strokes":
                raise UserError(
                    "the strokes set needs --data-path PATH (your stroke files), or a checkpoint of data=strokes"
                )
            subsets = tuple(s for s in subsets if s != "strokes")  # a model of the bundled data: nothing to say
        elif "strokes" in subsets and not args.data_path and not Path(stroke_path).expanduser().exists():
            message = f"the checkpoint's data.path={stroke_path} is not here: give --data-path PATH"
            if args.subset == "strokes":
                raise UserError(message)
            print(f"(no strokes rows: {message})")
            subsets = tuple(s for s in subsets if s != "strokes")
        if "brush" in subsets and hanzi_dir is None:
            message = f"the brush set needs --hanzi-dir PATH (get the data: `{HANZI_FETCH}`)"
            if args.subset == "brush":
                raise UserError(message)
            print(f"(no brush rows: {message})")
            subsets = tuple(s for s in subsets if s != "brush")
        fonts, styles = (
            load_font_set(args, data, hanzi_dir, tracer.size) if args.subset in (FONT_SET, "all") else (None, {})
        )
        classical = list(classical_methods())
        if not classical:
            print('(no classical rows: scikit-image is not installed; pip install -e ".[eval]")')
        glyphs = {}
        for subset in subsets:
            glyphs[subset] = test_glyphs(
                data, subset, args.n, hanzi_dir=hanzi_dir, split=args.split, stroke_path=stroke_path
            )
            print(f"{subset}: {len(glyphs[subset])} {args.split}-split glyphs")
        with one_thread(), classical_rows(classical, glyphs, fonts, args.workers) as collect:
            model_rows = {subset: model_scores(tracer, glyphs[subset]) for subset in subsets}
            font_rows = font_rows_of({"model": model_tracer(tracer)}, fonts)
            by_job = collect()
        rows = {}
        for subset in subsets:  # each set's rows together, the model's first
            rows[f"model@{subset}"] = model_rows[subset]
            for name in classical:
                rows.update(by_job[name, subset])
        if fonts:
            for name in classical:
                font_rows.update(by_job[name, FONT_SET])
        print(f"checkpoint {args.checkpoint}")
        if rows:
            print(table(rows))
        if font_rows:
            print(fonts_table(font_rows, styles))
        if args.json:
            scores = {**rows, **font_rows}
            for key in scores:  # how the model read each glyph, so a file says which reading it scores
                if key.startswith("model@"):
                    scores[key] = {**scores[key], "views": args.views}
            Path(args.json).write_text(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main()

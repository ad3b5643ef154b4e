"""``python -m inktrace_train.evaluate CHECKPOINT``: score a model and the classical baselines
on held-out test-split glyphs, as one table (and ``--json``).

The glyphs: the first ``--n`` of KanjiVG's test split (codepoints never trained or validated
on), each augmented and rendered once from a fixed seed with the checkpoint's data settings, so
every checkpoint is scored on the same images. Rows: the model (its predicted maps traced by
:mod:`tracing`), and -- with scikit-image installed (``pip install -e ".[eval]"``) -- the
classical answer: the ink thresholded at 0.5, then ``skimage.morphology.skeletonize`` or
``thin``, endpoints and junctions from the pixel graph, strokes by the same tracer without the
model's junctions and tangents.

Columns: skeleton F1 at 0 and 1 px, endpoint and junction F1 (one-to-one within 2 px), tangent
angular error on true skeleton pixels and half-width MAE on ink pixels (model only), stroke
recovery precision / recall / F1, stroke-count error and Chamfer distance (:mod:`strokemetrics`).
Only the clean set exists yet (issue 13 adds ``scan`` and ``brush``, and a ``--set`` option).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import fields
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from inktrace_train.build import make_augmenter
from inktrace_train.ckpt import ToolError
from inktrace_train.config import DataConfig
from inktrace_train.data import KanjiVGStrokes, Renderer
from inktrace_train.errors import UserError, fail
from inktrace_train.metrics import (
    KEYPOINT_THRESHOLD,
    KEYPOINT_TOLERANCE,
    TARGET_PEAK_THRESHOLD,
    f1_from_counts,
    match_counts,
    peaks,
)
from inktrace_train.predict import Predictor
from inktrace_train.strokemetrics import stroke_scores, summarize
from inktrace_train.tracing import junctions_from_pixels, thin, trace

PROG = "inktrace_train.evaluate"
TEST_STREAM = 2  # the random stream of test samples (0 training, 1 validation)


def test_glyphs(data: DataConfig, n: int, seed: int = 0):
    """(strokes, targets) of the first n test-split glyphs, each augmented once from (seed, i)."""
    source = KanjiVGStrokes("test", data.val_fraction, data.test_fraction, data.cache_dir)
    augment = make_augmenter(data)
    render = Renderer(data.img_size)
    glyphs = []
    for i in range(min(n, len(source))):
        rng = np.random.default_rng([seed, TEST_STREAM, 0, i])
        strokes, half_widths = augment(source.glyph(i, rng), rng)
        glyphs.append((strokes, render(strokes, half_widths)))
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
        out.update(summarize(self.strokes))
        return out


def score_glyph(scores: Scores, strokes, targets, skeleton, ends, junctions, traced) -> None:
    """Skeleton and keypoint matches and stroke scores of one glyph for one method."""
    true_skeleton = targets["skeleton"][0] > 0.5
    scores.match("skeleton_f1_0px", skeleton, true_skeleton, 0)
    scores.match("skeleton_f1_1px", skeleton, true_skeleton, 1)
    heat = torch.from_numpy(targets["keypoints"])
    true_points = peaks(heat, TARGET_PEAK_THRESHOLD).numpy()
    scores.match("endpoint_f1", ends, true_points[0], KEYPOINT_TOLERANCE)
    scores.match("junction_f1", junctions, true_points[1], KEYPOINT_TOLERANCE)
    scores.strokes.append(stroke_scores([s.points for s in traced], strokes))


def model_scores(predictor: Predictor, glyphs) -> Dict[str, float]:
    scores = Scores()
    size = predictor.size
    for strokes, targets in glyphs:
        maps = predictor.maps(targets["ink"][0])
        traced = predictor.strokes(maps)
        skeleton = maps["skeleton"] >= 0.5
        if "keypoints" in maps:
            found = peaks(torch.from_numpy(maps["keypoints"]), KEYPOINT_THRESHOLD).numpy()
        else:
            found = np.zeros((2, size, size), bool)
        score_glyph(scores, strokes, targets, skeleton, found[0], found[1], traced)
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
    for strokes, targets in glyphs:
        size = targets["ink"].shape[-1]
        skeleton = thin(skeletonize(targets["ink"][0] >= 0.5))
        junctions = junctions_from_pixels(skeleton)
        traced = trace(skeleton)
        score_glyph(scores, strokes, targets, skeleton, skeleton_ends(skeleton), point_map(junctions, size), traced)
    return scores.result()


COLUMNS = (
    ("skeleton_f1_0px", "skel F1@0"),
    ("skeleton_f1_1px", "skel F1@1"),
    ("endpoint_f1", "end F1"),
    ("junction_f1", "junc F1"),
    ("tangent_error_deg", "tangent err°"),
    ("width_mae_px", "width MAE"),
    ("stroke_f1", "stroke F1"),
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


def data_config(config: Optional[dict]) -> DataConfig:
    stored = (config or {}).get("data") or {}
    names = {f.name for f in fields(DataConfig)}
    return DataConfig(**{k: v for k, v in stored.items() if k in names})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a checkpoint file, or a run directory (its last stage's best)")
    p.add_argument("--n", type=int, default=512, help="test glyphs (default 512)")
    p.add_argument("--json", help="also write the table as JSON here")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    logging.getLogger("inktrace_train.checkpoint").setLevel(logging.ERROR)
    if args.n < 1:
        fail(f"--n={args.n}: must be at least 1", 2, prog=PROG)
    try:
        predictor = Predictor(args.checkpoint, args.device)
        glyphs = test_glyphs(data_config(predictor.config), args.n)
        rows = {"model@clean": model_scores(predictor, glyphs)}
        try:
            from skimage.morphology import skeletonize
            from skimage.morphology import thin as sk_thin
        except ImportError:
            print('(no classical rows: scikit-image is not installed; pip install -e ".[eval]")')
        else:
            rows["skeletonize@clean"] = classical_scores(skeletonize, glyphs)
            rows["thin@clean"] = classical_scores(sk_thin, glyphs)
        print(f"{len(glyphs)} test-split KanjiVG glyphs, checkpoint {args.checkpoint}")
        print(table(rows))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    except ToolError as e:
        fail(str(e), e.code, prog=PROG)
    except UserError as e:
        fail(str(e), 1, prog=PROG)


if __name__ == "__main__":
    main()

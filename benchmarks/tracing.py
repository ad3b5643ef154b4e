"""The tracer alone, on validation glyphs: does it keep the ink, and what does it score?

Usage:
    PYTHONPATH=src python benchmarks/tracing.py [--n 200] [--set clean|scan] [--tracer MODULE]

Three inputs per glyph, none from a model (so any tracer change is measured without training):
- ``perfect``: the renderer's own skeleton, junction points and tangent field (a perfect model);
- ``classical``: scikit-image's ``thin`` of the input thresholded at 0.5, junctions from its
  pixel graph (the evaluate baseline);
- ``spurious``: the classical skeleton with 25 random junction points and a random tangent field
  (what a confused model hands over).

Columns: coverage (the share of the tracer's own cleaned skeleton within 1 px of a stroke: 1.0
by construction), ink recall and lossy glyphs (evaluate's, against the input's reference
skeleton), stroke F1, |count error|, ms per glyph. ``--tracer`` names another module with a
``trace`` function (an older tracer saved from git, to compare).
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np

from inktrace_train.cli.evaluate import test_glyphs
from inktrace_train.config.schema import DataConfig
from inktrace_train.evaluation.metrics import peaks
from inktrace_train.evaluation.skeleton import clean, thin
from inktrace_train.evaluation.strokemetrics import ink_counts, pooled_scores, stroke_scores
from inktrace_train.evaluation.tracing import untraced


def inputs(strokes, targets, image, rng):
    import torch
    from skimage.morphology import thin as sk_thin

    junction = peaks(torch.from_numpy(targets["keypoints"][1:2]), 0.5)[0].numpy()
    ys, xs = np.nonzero(junction)
    size = image.shape[-1]
    classical = sk_thin(image >= 0.5)
    return {
        "perfect": (targets["skeleton"][0] > 0.5, np.stack([xs + 0.5, ys + 0.5], 1), targets["tangent"]),
        "classical": (classical, None, None),
        "spurious": (classical, rng.uniform(0, size, (25, 2)), rng.uniform(-1, 1, (2, size, size))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="validation glyphs")
    parser.add_argument("--set", default="clean", choices=("clean", "scan"), dest="subset")
    parser.add_argument("--tracer", default="inktrace_train.evaluation.tracing", help="module with trace()")
    args = parser.parse_args()
    trace = importlib.import_module(args.tracer).trace
    glyphs = test_glyphs(DataConfig(), args.subset, args.n, split="val")
    rng = np.random.default_rng(0)
    rows = {}
    for strokes, targets, image in glyphs:
        for name, (skeleton, junctions, tangent) in inputs(strokes, targets, image, rng).items():
            start = time.perf_counter()
            traced = [s.points for s in trace(skeleton, junctions, tangent)]
            row = rows.setdefault(name, {"glyphs": [], "seconds": 0.0, "covered": [0, 0]})
            row["seconds"] += time.perf_counter() - start
            own = clean(thin(np.asarray(skeleton, bool)))
            row["covered"][0] += int(own.sum() - untraced(own, traced).sum())
            row["covered"][1] += int(own.sum())
            row["glyphs"].append({**stroke_scores(traced, strokes), **ink_counts(image, traced)})
    print(f"tracer {args.tracer}, {len(glyphs)} validation glyphs ({args.subset})")
    print("| input | coverage @1px | ink recall | lossy glyphs | stroke F1 | count err | ms/glyph |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        s = pooled_scores(row["glyphs"])
        covered, total = row["covered"]
        print(
            f"| {name} | {covered / total:.4f} | {s['ink_recall']:.4f} | {s['lossy_glyphs']:.3f} | "
            f"{s['stroke_f1']:.3f} | {s['stroke_count_error']:.2f} | {1000 * row['seconds'] / len(glyphs):.1f} |"
        )


if __name__ == "__main__":
    main()

"""Tracing a skeleton into strokes: straight strokes stay within 1 px of the truth, and strokes
that cross or touch stay whole (two strokes, not four pieces)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from inktrace_train.data import Renderer
from inktrace_train.evaluation.metrics import peaks
from inktrace_train.evaluation.tracing import thin, to_svg, trace

SIZE = 64


def rendered(strokes, half_width=1.0):
    """The renderer's targets for ``strokes``, as a perfect model would predict them."""
    t = Renderer(SIZE)([np.asarray(s, float) for s in strokes], np.full(len(strokes), half_width))
    junction = peaks(torch.from_numpy(t["keypoints"][1:2]), 0.5)[0].numpy()
    ys, xs = np.nonzero(junction)
    return t["skeleton"][0] > 0.5, np.stack([xs + 0.5, ys + 0.5], 1), t["tangent"], t["width"][0]


def distance_to_segment(points, a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    return np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)


def assert_traces(strokes, truth):
    """One traced stroke per true segment, every point within 1 px of it, ends within 2 px."""
    assert len(strokes) == len(truth), [len(s.points) for s in strokes]
    for a, b in truth:
        best = min(strokes, key=lambda s: distance_to_segment(s.points, a, b).mean())
        assert distance_to_segment(best.points, a, b).max() <= 1.0
        ends = sorted([best.points[0], best.points[-1]], key=lambda p: np.linalg.norm(p - a))
        assert np.linalg.norm(ends[0] - a) <= 2.0 and np.linalg.norm(ends[1] - b) <= 2.0


CASES = {
    "single": [((10.0, 12.0), (50.0, 40.0))],
    "cross": [((8.0, 32.0), (56.0, 32.0)), ((32.0, 8.0), (32.0, 56.0))],
    "diagonal-cross": [((10.0, 10.0), (54.0, 50.0)), ((10.0, 52.0), (52.0, 12.0))],
    "tee": [((8.0, 20.0), (56.0, 20.0)), ((32.0, 21.0), (32.0, 56.0))],
}


@pytest.mark.parametrize("case", CASES)
def test_the_model_tracer_keeps_strokes_whole(case):
    skeleton, junctions, tangent, half_width = rendered(CASES[case])
    strokes = trace(skeleton, junctions, tangent, half_width)
    assert_traces(strokes, CASES[case])
    assert all(s.width == pytest.approx(2.0, abs=0.01) for s in strokes)


@pytest.mark.parametrize("case", ["single", "cross", "tee"])
def test_the_classical_tracer_on_the_same_skeleton(case):
    skeleton, *_ = rendered(CASES[case])
    assert_traces(trace(skeleton), CASES[case])


def test_thinning_leaves_one_pixel_lines():
    thick = np.zeros((SIZE, SIZE), bool)
    thick[20:24, 5:60] = True
    line = thin(thick)
    assert line.sum() >= 50 and (line.sum(0) <= 1).all()


def test_svg_has_a_path_per_stroke_and_parses():
    skeleton, junctions, tangent, half_width = rendered(CASES["cross"])
    svg = to_svg(trace(skeleton, junctions, tangent, half_width), SIZE)
    root = ET.fromstring(svg)
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 2 and all(p.get("d").startswith("M ") for p in paths)
    assert root.get("viewBox") == f"0 0 {SIZE} {SIZE}"

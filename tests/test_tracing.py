"""Tracing a skeleton into strokes: straight strokes stay within 1 px of the truth, strokes that
cross or touch stay whole (two strokes, not four pieces), and no skeleton pixel is left untraced."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch

from inktrace_train.data import Renderer
from inktrace_train.evaluation import tracing
from inktrace_train.evaluation.metrics import peaks
from inktrace_train.evaluation.skeleton import clean, junctions_from_pixels, thin
from inktrace_train.evaluation.tracing import to_svg, trace, untraced

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


# --- Lossless tracing: every pixel of the cleaned skeleton ends within 1 px of a stroke. ---


def canvas(draw) -> np.ndarray:
    img = np.zeros((SIZE, SIZE), np.uint8)
    draw(img)
    return img.astype(bool)


def assert_lossless(skeleton, junctions=None, tangent=None, half_width=None, endpoints=None):
    """Full coverage of the tracer's own cleaned skeleton, and no stroke emitted twice (each
    stroke has a vertex pixel that no other stroke has)."""
    strokes = trace(skeleton, junctions, tangent, half_width, endpoints)
    own = clean(thin(np.asarray(skeleton, bool)))
    missed = untraced(own, [s.points for s in strokes])
    assert not missed.any(), f"{missed.sum()} of {own.sum()} skeleton pixels untraced at {np.argwhere(missed)[:5]}"
    vertex_sets = [set(map(tuple, np.floor(s.points).astype(int).tolist())) for s in strokes]
    for i, own_vertices in enumerate(vertex_sets):
        others = set().union(*(v for j, v in enumerate(vertex_sets) if j != i))
        assert own_vertices - others, f"stroke {i} of {len(strokes)} repeats other strokes' pixels"
    return strokes


def _line(a, b, width=1):
    return lambda img: cv2.line(img, a, b, 1, width)


SHAPES = {
    "口": lambda img: cv2.rectangle(img, (12, 12), (50, 50), 1, 1),
    "日": lambda img: (cv2.rectangle(img, (16, 8), (46, 56), 1, 1), cv2.line(img, (16, 32), (46, 32), 1, 1)),
    "回": lambda img: (cv2.rectangle(img, (8, 8), (56, 56), 1, 1), cv2.rectangle(img, (22, 22), (42, 42), 1, 1)),
    "田": lambda img: (
        cv2.rectangle(img, (10, 10), (50, 50), 1, 1),
        cv2.line(img, (10, 30), (50, 30), 1, 1),
        cv2.line(img, (30, 10), (30, 50), 1, 1),
    ),
    "O": lambda img: cv2.circle(img, (32, 32), 15, 1, 1),
    "thick cross": lambda img: (cv2.line(img, (5, 20), (60, 20), 1, 6), cv2.line(img, (30, 5), (30, 60), 1, 6)),
    "spurs": lambda img: (cv2.line(img, (5, 30), (60, 30), 1, 1), cv2.line(img, (20, 30), (20, 28), 1, 1)),
    "tee": lambda img: (cv2.line(img, (8, 20), (56, 20), 1, 1), cv2.line(img, (32, 21), (32, 56), 1, 1)),
    "star": lambda img: [
        cv2.line(img, (32, 32), (32 + dx, 32 + dy), 1, 1)
        for dx, dy in ((25, 0), (0, 25), (-20, -20), (20, -25), (-25, 10))
    ],
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("points", ["classical", "none", "spurious", "dense", "off"])
def test_every_skeleton_pixel_is_traced(shape, points):
    """The failure kinds the old tracer had, one each: closed loops, pieces between two junctions,
    junction points off the skeleton or far from any branch, many along one stroke, thick
    junction regions, spurs, and branches that no junction point marks."""
    sk = canvas(SHAPES[shape])
    rng = np.random.default_rng(len(shape))
    junctions = {
        "classical": None,
        "none": np.zeros((0, 2)),  # the model saw no junction: branches must still be traced
        "spurious": rng.uniform(0, SIZE, (25, 2)),
        "dense": np.argwhere(sk)[::2][:, ::-1] + 0.5,  # a junction point on every other pixel
        "off": np.array([[2.5, 2.5], [61.5, 3.5], [3.5, 60.5]]),  # far from any ink
    }[points]
    assert_lossless(sk, junctions)
    assert_lossless(sk, junctions, rng.uniform(-1, 1, (2, SIZE, SIZE)))  # a tangent field pointing anywhere


@pytest.mark.parametrize("shape", ["O", "口"])
def test_a_ring_is_cut_into_the_three_strokes_of_a_box(shape):
    """Regular script writes no closed stroke: a ring (a rounded font's 口, a box in one line) is
    traced as 口 is written -- down the left, across the top and down the right, along the bottom."""
    strokes = [s.points for s in assert_lossless(canvas(SHAPES[shape]), np.zeros((0, 2)))]
    assert len(strokes) == 3 and len({tuple(p) for s in strokes for p in (s[0], s[-1])}) == 3  # 3 corners
    corner = {"top-left": (20, 20), "bottom-left": (20, 44), "bottom-right": (44, 44)}

    def runs(start: str, end: str) -> np.ndarray:  # the stroke that starts at one corner and ends at the other
        (stroke,) = [s for s in strokes if abs(s[0] - corner[start]).max() < 12 and abs(s[-1] - corner[end]).max() < 12]
        return stroke

    assert runs("top-left", "bottom-left")[:, 0].max() < 30  # 丨 down the left side
    assert runs("top-left", "bottom-right")[:, 0].max() > 44  # 𠃍 across the top and down the right
    assert runs("bottom-left", "bottom-right")[:, 1].min() > 34  # 一 along the bottom


def test_a_tiny_ring_stays_one_stroke():
    (stroke,) = assert_lossless(canvas(lambda img: cv2.circle(img, (32, 32), 2, 1, 1)), np.zeros((0, 2)))
    assert np.abs(stroke.points[0] - stroke.points[-1]).max() <= 1.0


def test_a_branch_no_junction_point_marks_is_kept():
    """A T whose junction the model missed: the old tracer walked one path through the piece and
    dropped the other branch (the stem)."""
    strokes = assert_lossless(canvas(SHAPES["tee"]), np.zeros((0, 2)))
    assert sum(s.length for s in strokes) >= 48 + 35 - 2


def test_a_short_piece_between_two_junctions_is_kept():
    """Two strokes crossing one bar 3 px apart: the piece of bar between the crossings is traced."""
    sk = canvas(
        lambda img: (
            cv2.line(img, (5, 30), (60, 30), 1, 1),
            cv2.line(img, (30, 10), (30, 50), 1, 1),
            cv2.line(img, (33, 10), (33, 50), 1, 1),
        )
    )
    assert_lossless(sk, np.array([[30.5, 30.5], [33.5, 30.5]]))


@pytest.mark.parametrize("with_tangent", [False, True])
def test_a_bar_through_two_junctions_one_pixel_apart_stays_one_stroke(with_tangent):
    """Two stems cross a bar 6 px apart: the cuts around the two crossings leave one pixel of bar
    between them, a segment with no direction of its own. Each of its ends points at the junction
    it enters; both once took the same fixed direction, so one junction could not join the bar
    through and cut it in two."""
    sk = canvas(
        lambda img: (
            cv2.line(img, (5, 30), (60, 30), 1, 1),
            cv2.line(img, (30, 10), (30, 50), 1, 1),
            cv2.line(img, (36, 10), (36, 50), 1, 1),
        )
    )
    tangent = None
    if with_tangent:  # the bar horizontal (2θ = 0), the stems vertical (2θ = 180°)
        tangent = np.zeros((2, SIZE, SIZE), np.float32)
        tangent[0][30] = 1.0
        tangent[0][:, [30, 36]] = -1.0
    strokes = assert_lossless(sk, np.array([[30.5, 30.5], [36.5, 30.5]]), tangent)
    assert len(strokes) == 3
    bar = strokes[0]  # the longest
    assert sorted([bar.points[0][0], bar.points[-1][0]]) == [5.5, 60.5]


def test_a_stroke_through_bars_closer_than_their_cuts_stays_one_stroke(monkeypatch):
    """目's middle stroke: bars 4 px apart cross it, and the cuts around their junctions merge
    into one zone that holds the whole stroke below its top. Its one end runs through the zone to
    the farthest junction straight ahead; to the nearest one, the rest came out in six pieces."""
    bars = [20, 24, 28, 32, 36, 40]
    sk = canvas(
        lambda img: (
            cv2.line(img, (30, 8), (30, 40), 1, 1),  # down from y 8, ending on the last bar
            *(cv2.line(img, (18, y), (42, y), 1, 1) for y in bars),
        )
    )
    junctions = np.array([[30.5, y + 0.5] for y in bars])
    strokes = assert_lossless(sk, junctions)
    assert len(strokes) == 7 and sorted(p[1] for p in strokes[0].points[[0, -1]]) == [8.5, 40.5]
    monkeypatch.setattr(tracing, "AHEAD_DEG", 0.0)
    assert len(assert_lossless(sk, junctions)) == 12


def random_skeleton(rng) -> np.ndarray:
    """Random strokes, loops, crosses, T's and thick bands."""
    img = np.zeros((SIZE, SIZE), np.uint8)
    for _ in range(rng.integers(1, 7)):
        kind = rng.integers(4)
        p = [tuple(int(v) for v in rng.integers(4, SIZE - 4, 2)) for _ in range(3)]
        width = 1 if rng.random() < 0.6 else int(rng.integers(2, 8))  # thick bands: thinned by the tracer
        if kind == 0:
            cv2.line(img, p[0], p[1], 1, width)
        elif kind == 1:
            cv2.polylines(img, [np.array(p, np.int32)], bool(rng.integers(2)), 1, width)
        elif kind == 2:
            cv2.circle(img, p[0], int(rng.integers(3, 16)), 1, width)
        else:
            cv2.rectangle(img, p[0], p[1], 1, width)
    return img.astype(bool)


@pytest.mark.parametrize("seed", range(40))
def test_property_random_skeletons_are_fully_traced(seed):
    rng = np.random.default_rng(seed)
    sk = random_skeleton(rng)
    from_pixels = junctions_from_pixels(thin(sk))
    for junctions in (
        None,
        np.zeros((0, 2)),
        from_pixels + rng.normal(0, 1.5, from_pixels.shape),  # jittered
        rng.uniform(0, SIZE, (int(rng.integers(1, 40)), 2)),  # spurious
        np.argwhere(thin(sk))[:: int(rng.integers(1, 4))][:, ::-1] + 0.5,  # dense
    ):
        tangent = None if rng.random() < 0.3 else rng.uniform(-1, 1, (2, SIZE, SIZE))
        assert_lossless(sk, junctions, tangent)
        # the model's endpoint and width maps too: corners joined (endpoints anywhere or none),
        # strokes inside a longer one's footprint (1 px half width: within 1 px of it) dropped
        ends = rng.uniform(0, SIZE, (int(rng.integers(0, 10)), 2))
        assert_lossless(sk, junctions, tangent, np.ones((SIZE, SIZE), np.float32), ends)


def test_perfect_targets_of_real_glyphs_keep_their_ink():
    """The renderer's own maps of 40 validation glyphs (a perfect model): the old tracer left
    8 % of their skeleton untraced (21 % of glyphs lost more than a tenth of it)."""
    from inktrace_train.cli.evaluate import data_config, test_glyphs
    from inktrace_train.evaluation.strokemetrics import ink_counts, pooled_scores, stroke_scores

    scores = []
    for strokes, targets, image in test_glyphs(data_config(None), "clean", 40, split="val"):  # the clean set's pens
        junction = peaks(torch.from_numpy(targets["keypoints"][1:2]), 0.5)[0].numpy()
        ys, xs = np.nonzero(junction)
        traced = assert_lossless(targets["skeleton"][0] > 0.5, np.stack([xs + 0.5, ys + 0.5], 1), targets["tangent"])
        polylines = [s.points for s in traced]
        scores.append({**stroke_scores(polylines, strokes), **ink_counts(image, polylines)})
    summary = pooled_scores(scores)
    assert summary["ink_recall"] >= 0.99 and summary["lossy_glyphs"] == 0.0
    assert summary["stroke_f1"] >= 0.7


# --- Wide ink: bridges across a faded meeting, spurs inside a stroke's footprint. ---


def wide_cross_with_gap(gap_end_marked: bool = False, ink_gap: bool = False):
    """A vertical stroke and a horizontal one whose skeleton stops 4 px short of it (as the model's
    map fades where wide strokes meet), in 8 px wide ink; endpoint peaks at the true stroke ends."""
    sk = canvas(lambda img: (cv2.line(img, (32, 8), (32, 56), 1, 1), cv2.line(img, (6, 32), (27, 32), 1, 1)))
    ink = np.zeros((SIZE, SIZE), np.float32)
    cv2.line(ink, (32, 8), (32, 56), 1.0, 8)
    cv2.line(ink, (6, 32), (32, 32), 1.0, 8)
    if ink_gap:
        ink[:, 28:29] = 0.0
    ends = [[32.5, 8.5], [32.5, 56.5], [6.5, 32.5]] + ([[27.5, 32.5]] if gap_end_marked else [])
    return sk, np.array(ends), np.full((SIZE, SIZE), 4.0, np.float32), ink


def test_an_unmarked_end_is_bridged_to_the_stroke_it_points_at():
    sk, ends, half_width, ink = wide_cross_with_gap()
    strokes = trace(sk, np.zeros((0, 2)), None, half_width, ends, ink)
    horizontal = min(strokes, key=lambda s: np.ptp(s.points[:, 1]))
    assert horizontal.points[:, 0].max() >= 31.0  # it reaches the vertical stroke
    assert sum(np.ptp(s.points[:, 1]) >= 40 for s in strokes) == 1  # the vertical is still one stroke


@pytest.mark.parametrize("why", ["the model marks the end", "the ink stops", "no endpoint map"])
def test_no_bridge_where_a_stroke_ends(why):
    sk, ends, half_width, ink = wide_cross_with_gap(
        gap_end_marked=why == "the model marks the end", ink_gap=why == "the ink stops"
    )
    strokes = trace(sk, np.zeros((0, 2)), None, half_width, None if why == "no endpoint map" else ends, ink)
    horizontal = min(strokes, key=lambda s: np.ptp(s.points[:, 1]))
    assert horizontal.points[:, 0].max() <= 28.5


def test_a_spur_inside_a_wide_strokes_footprint_is_not_a_stroke():
    """Wide ink: a 4 px spur off an 8 px wide stroke lies within its half width, so it is part of
    that stroke's ink; without widths it is traced (lossless), and a short stroke outside any
    footprint is always kept."""
    sk = canvas(
        lambda img: (
            cv2.line(img, (6, 30), (58, 30), 1, 1),
            cv2.line(img, (20, 31), (20, 34), 1, 1),
            cv2.line(img, (40, 50), (43, 50), 1, 1),
        )
    )
    half_width = np.full((SIZE, SIZE), 4.0, np.float32)
    assert len(assert_lossless(sk, np.zeros((0, 2)))) == 3  # the bar, the spur, the dash
    strokes = trace(sk, np.zeros((0, 2)), None, half_width)
    assert sorted(round(s.length) for s in strokes) == [3, 52]  # the bar and the dash


@pytest.mark.parametrize("between", ["ink", "paper"])
def test_a_skeleton_along_both_edges_of_heavy_ink_is_one_stroke(between):
    """Heavy ink: the skeleton map runs along both edges of one 10 px wide bar, 5 px apart (more
    than the half width the model gives it, within 1.5 of it). With ink all the way across the two
    lines are one stroke; with paper between them (two bars side by side) they are two. A short
    stroke meeting the bar at a right angle, as near, is kept either way."""
    sk = canvas(
        lambda img: (
            cv2.line(img, (8, 28), (56, 28), 1, 1),  # the upper edge, the longer
            cv2.line(img, (12, 33), (50, 33), 1, 1),  # the lower edge
            cv2.line(img, (30, 36), (30, 40), 1, 1),  # a short stroke below, across
        )
    )
    ink = np.zeros((SIZE, SIZE), np.float32)
    cv2.rectangle(ink, (6, 26), (58, 35), 1.0, -1)
    cv2.line(ink, (30, 35), (30, 41), 1.0, 3)
    if between == "paper":
        ink[30:32] = 0.0
    half_width = np.full((SIZE, SIZE), 3.5, np.float32)
    strokes = trace(sk, np.zeros((0, 2)), None, half_width, np.zeros((0, 2)), ink)
    bars = [s for s in strokes if np.ptp(s.points[:, 0]) > 20]
    assert len(bars) == (1 if between == "ink" else 2)
    assert any(np.ptp(s.points[:, 1]) >= 3 and np.ptp(s.points[:, 0]) <= 1 for s in strokes)  # the short stroke


def wide_corner(spur: bool = True) -> np.ndarray:
    """The skeleton of one 9 px wide stroke that turns 90 degrees (the second stroke of 口): a
    bar, then down, and the spur that thinning grows into the outer corner of wide ink (it would
    continue the bar straighter than the downstroke does)."""
    return canvas(
        lambda img: (
            cv2.line(img, (6, 12), (40, 12), 1, 1),
            cv2.line(img, (40, 12), (40, 56), 1, 1),
            cv2.line(img, (41, 11), (43, 9), 1, 1) if spur else None,
        )
    )


@pytest.mark.parametrize("spur", [True, False])
def test_a_sharp_corner_no_endpoint_marks_is_one_stroke(spur, monkeypatch):
    ends, half_width = np.array([[6.5, 12.5], [40.5, 56.5]]), np.full((SIZE, SIZE), 4.5, np.float32)
    sk, junction = wide_corner(spur), np.array([[40.5, 12.5]])  # the corner cut as a junction
    strokes = trace(sk, junction, None, half_width, ends)
    assert len(strokes) == 1 and strokes[0].length >= 75  # the bar and the downstroke, through the corner
    assert not untraced(clean(thin(sk)), [s.points for s in strokes], within=4.5).any()  # the spur: in its ink
    monkeypatch.setattr(tracing, "CORNER_TURN_DEG", 0.0)  # off: the turn limit splits it, as before
    assert len(trace(sk, junction, None, half_width, ends)) == 2


def test_two_strokes_meeting_at_a_corner_stay_two():
    """口's first corner: the model puts an endpoint peak where each stroke ends."""
    ends = np.array([[6.5, 12.5], [40.5, 56.5], [39.5, 12.5], [40.5, 13.5]])
    strokes = trace(wide_corner(), np.array([[40.5, 12.5]]), None, np.full((SIZE, SIZE), 4.0, np.float32), ends)
    assert len(strokes) == 2


def test_a_bar_and_a_stem_meeting_at_an_unmarked_branching_pixel_are_not_walked_as_one(monkeypatch):
    """Where a diagonal comes in, a bar goes right and a stem goes down from one branching pixel
    (thinning draws this where wide strokes cross) and the model marks no junction there: cut
    alone, the pixel leaves the bar's first pixel and the stem's diagonal to each other, and the
    two were walked as one bent stroke."""
    sk = canvas(
        lambda img: (
            cv2.line(img, (10, 9), (20, 19), 1, 1),  # the diagonal, into the branching pixel
            cv2.line(img, (20, 19), (44, 19), 1, 1),  # the bar
            cv2.line(img, (20, 19), (20, 44), 1, 1),  # the stem
        )
    )
    half_width, none = np.full((SIZE, SIZE), 2.0, np.float32), np.zeros((0, 2))

    def bent() -> bool:
        strokes = assert_lossless(sk, none, None, half_width, none)
        ends = [{tuple(s.points[0]), tuple(s.points[-1])} for s in strokes]
        return any({(44.5, 19.5), (20.5, 44.5)} <= e for e in ends)

    assert not bent()
    monkeypatch.setattr(tracing, "BRANCH_CUT", 0)
    assert bent()


# --- A joined hand's strokes: longer than any stroke regular script writes. ---

ZIGZAG = [(8, 10), (56, 10), (8, 54), (56, 54)]  # 一, a diagonal, 一 written without lifting the pen: 161 px


def test_a_stroke_longer_than_any_regular_one_is_cut_at_its_sharp_turns(monkeypatch):
    """The model marks no junction and no end in a joined hand's turns, so nothing before this
    step cuts there."""
    sk = canvas(lambda img: cv2.polylines(img, [np.array(ZIGZAG, np.int32)], False, 1, 1))
    points = np.zeros((0, 2))
    strokes = assert_lossless(sk, points)
    assert len(strokes) == 3  # cut at both turns: 48 + 65 + 48 px
    corners = np.array(ZIGZAG, float) + 0.5
    for stroke in strokes:  # each piece runs from one corner of the zigzag to the next
        near = [np.linalg.norm(corners - end, axis=1) for end in stroke.points[[0, -1]]]
        ends = sorted(int(np.argmin(d)) for d in near)
        assert ends[1] - ends[0] == 1 and max(d.min() for d in near) <= 2.0
    monkeypatch.setattr(tracing, "LONG_STROKE_SIDES", math.inf)  # off: one stroke, as before
    assert len(trace(sk, points)) == 1


def test_a_long_stroke_that_turns_gently_stays_one():
    """A long arc (乙's sweep, a long hook's curve) turns by far less than LONG_TURN_DEG within a
    few pixels: nothing to cut at."""
    sk = canvas(lambda img: cv2.ellipse(img, (32, 32), (24, 24), 0, 0, 270, 1, 1))  # 113 px
    (stroke,) = assert_lossless(sk, np.zeros((0, 2)))
    assert stroke.length > tracing.LONG_STROKE_SIDES * SIZE


def test_a_sharp_corner_in_a_stroke_of_regular_length_stays_one():
    """𠃍 (across, then down: 70 px) turns 90 degrees, but regular script writes strokes that long."""
    sk = canvas(lambda img: cv2.polylines(img, [np.array([(10, 12), (45, 12), (45, 47)], np.int32)], False, 1, 1))
    (stroke,) = assert_lossless(sk, np.zeros((0, 2)))
    assert 65 <= stroke.length <= tracing.LONG_STROKE_SIDES * SIZE


# --- Two strokes met end to start in one ink: the endpoint map marks both ends. ---

JOINED = [(8, 12), (38, 12), (44, 18), (44, 54)]  # a bar, a short join, a downstroke: walked as one


def test_a_stroke_through_two_marked_ends_at_a_turn_is_cut_there(monkeypatch):
    """A marker's bar runs on into the next stroke's start: the skeleton is one line, no junction,
    but the model marks the bar's end and the downstroke's start, 8 px apart, where the line turns."""
    sk = canvas(lambda img: cv2.polylines(img, [np.array(JOINED, np.int32)], False, 1, 1))
    ends = np.array([[8.5, 12.5], [38.5, 12.5], [44.5, 18.5], [44.5, 54.5]])
    strokes = assert_lossless(sk, np.zeros((0, 2)), None, None, ends)
    assert len(strokes) == 2
    bar, down = sorted(strokes, key=lambda s: s.points[:, 1].mean())
    assert np.ptp(bar.points[:, 1]) <= 6 and np.ptp(down.points[:, 0]) <= 6  # cut in the join
    monkeypatch.setattr(tracing, "END_PAIR_TURN_DEG", 0.0)  # off: one stroke, as before
    assert len(trace(sk, np.zeros((0, 2)), None, None, ends)) == 1


@pytest.mark.parametrize(
    "marks",
    [
        [(20.5, 12.5), (28.5, 12.5)],  # two marks on a straight stretch (heavy ink raises peaks)
        [(30.5, 12.5), (44.5, 30.5)],  # a turn between marks 24 px of arc apart: too far to be one join
        [(41.5, 14.5)],  # one mark at the turn: 𠃍's corner, not two ends
    ],
    ids=["straight", "far apart", "one mark"],
)
def test_a_turning_stroke_without_two_close_marks_at_its_turn_stays_one(marks):
    sk = canvas(lambda img: cv2.polylines(img, [np.array(JOINED, np.int32)], False, 1, 1))
    ends = np.array([[8.5, 12.5], [44.5, 54.5], *marks])
    (stroke,) = assert_lossless(sk, np.zeros((0, 2)), None, None, ends)
    assert stroke.length > 60

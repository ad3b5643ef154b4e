"""Target sanity of the CPU Renderer on hand-made, synthetic and KanjiVG strokes."""

import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest

from inktrace_train.config.schema import DataConfig
from inktrace_train.data import TARGET_CHANNELS, KanjiVGStrokes, Renderer, SyntheticStrokes
from inktrace_train.data.kanjivg import kanji_dir
from inktrace_train.train.build import make_augmenter

SIZE = 64


def line(*points):
    return np.array(points, dtype=np.float32)


def local_maxima(heat: np.ndarray) -> np.ndarray:
    """(row, col) of pixels that are spot peaks (equal to 1 and maximal in 3x3)."""
    peak = (heat == cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat > 0.99)
    _n, _, _, centroids = cv2.connectedComponentsWithStats(peak.astype(np.uint8), connectivity=8)
    return centroids[1:, ::-1]  # one per plateau


@pytest.fixture(scope="module")
def renderer():
    return Renderer(SIZE)


@pytest.fixture(scope="module")
def augmenter():
    return make_augmenter(replace(DataConfig(), img_size=SIZE))


@pytest.fixture(scope="module")
def kanjivg_subset(tmp_path_factory):
    """A source over 60 real files (fast to parse) with all of them in 'train'."""
    src = tmp_path_factory.mktemp("svgs")
    for path in sorted(kanji_dir().glob("0[4-9]*.svg"))[::97][:60]:
        shutil.copy(path, src)
    return KanjiVGStrokes("train", 1e-9, 0.0, str(tmp_path_factory.mktemp("cache")), source_dir=str(src))


def test_shapes_and_dtypes(renderer):
    out = renderer([line([5, 5], [40, 30])], np.array([1.0]))
    assert set(out) == set(TARGET_CHANNELS)
    for key, channels in TARGET_CHANNELS.items():
        assert out[key].shape == (channels, SIZE, SIZE) and out[key].dtype == np.float32


def test_horizontal_line_exact_targets(renderer):
    y, hw = 20.3, 1.0
    out = renderer([line([10, y], [50, y])], np.array([hw]))
    col = 30  # away from the ends
    # Coverage of a 2-px pen centred at 20.3: rows 19, 20, 21 get .7, 1, .3.
    np.testing.assert_allclose(out["ink"][0, 18:23, col], [0, 0.7, 1, 0.3, 0], atol=1e-5)
    skel = np.argwhere(out["skeleton"][0] > 0)
    assert set(skel[:, 0]) == {20} and skel[:, 1].min() == 10 and skel[:, 1].max() == 50
    on = out["skeleton"][0] > 0
    np.testing.assert_allclose(out["tangent"][0][on], 1.0, atol=1e-6)
    np.testing.assert_allclose(out["tangent"][1][on], 0.0, atol=1e-6)
    # Offsets: straight down/up to the centerline, exactly, on ink pixels.
    np.testing.assert_allclose(out["offset"][:, 19:21, col], [[0, 0], [y - 19.5, y - 20.5]], atol=1e-5)
    assert out["offset"][1, 21, col] == 0  # coverage .3 < .5: not an ink pixel
    np.testing.assert_allclose(out["width"][0, 19:21, col], hw)
    peaks = local_maxima(out["keypoints"][0])
    assert sorted(map(tuple, peaks.astype(int))) == [(20, 10), (20, 50)]
    assert out["keypoints"][1].max() == 0


def test_separated_strokes_two_endpoints_each(renderer):
    strokes = [line([8, 10], [56, 10]), line([8, 30], [30, 45], [56, 30]), line([10, 55], [50, 58])]
    out = renderer(strokes, np.array([1.0, 1.2, 0.8]))
    assert len(local_maxima(out["keypoints"][0])) == 6
    assert out["keypoints"][1].max() == 0  # no two strokes come close


def test_closed_stroke_has_no_endpoints(renderer):
    t = np.linspace(0, 2 * np.pi, 80)
    circle = np.stack([32 + 15 * np.cos(t), 32 + 15 * np.sin(t)], axis=1).astype(np.float32)
    out = renderer([circle], np.array([1.0]))
    assert out["keypoints"][0].max() == 0
    assert out["skeleton"].sum() > 80  # ~ 2 pi 15 pixels


@pytest.mark.parametrize(
    "strokes,contact",
    [
        # A T whose stem stops 1.5 px short of the bar, as KanjiVG strokes often do.
        ([line([10, 20], [54, 20]), line([32, 21.5], [32, 55])], (32, 20)),
        ([line([10, 10], [54, 54]), line([54, 10], [10, 54])], (32, 32)),  # an X
    ],
)
def test_one_junction_near_contact(renderer, strokes, contact):
    out = renderer(strokes, np.array([1.0, 1.0]))
    peaks = local_maxima(out["keypoints"][1])
    assert len(peaks) == 1
    row, col = peaks[0]
    assert abs(col + 0.5 - contact[0]) <= 2.0 and abs(row + 0.5 - contact[1]) <= 2.0


def check_invariants(out, pen):
    """Consistency checks that must hold for any glyph."""
    ink, skel = out["ink"][0], out["skeleton"][0] > 0
    # A pen under 1.2 px (the defaults reach 0.8) covers its centre pixels in proportion to its width.
    inked = 0.3 * min(1.0, 2 * float(pen.half_width.min()) / 1.2)
    near_ink = cv2.dilate((ink > inked).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert skel.any() and np.all(near_ink[skel])
    assert np.mean(ink[skel] > inked) > 0.95  # nearly all skeleton pixels are inked themselves
    norm = np.hypot(*out["tangent"])
    np.testing.assert_allclose(norm[skel], 1.0, atol=1e-5)
    assert np.all(norm[~skel] == 0)
    on_ink = ink >= 0.5
    width, offset = out["width"][0], np.hypot(*out["offset"])
    assert np.all(width[~on_ink] == 0) and np.all(offset[~on_ink] == 0)
    half_widths = pen.half_width
    assert np.all((width[on_ink] >= half_widths.min() - 1e-6) & (width[on_ink] <= half_widths.max() + 1e-6))
    assert np.all(offset[on_ink] <= width[on_ink] + 1.0)
    kp = out["keypoints"]
    assert kp.min() >= 0 and kp.max() <= 1


def test_synthetic_samples_are_consistent(renderer, augmenter):
    source = SyntheticStrokes(max_strokes=6)
    for i in range(20):
        rng = np.random.default_rng([7, i])
        strokes, hw = augmenter(source.glyph(0, rng), rng)
        out = renderer(strokes, hw)
        check_invariants(out, hw)
        # Endpoint peaks: at most two per stroke (ends may share a pixel).
        assert 1 <= len(local_maxima(out["keypoints"][0])) <= 2 * len(strokes)


def test_kanjivg_samples_are_consistent(renderer, augmenter, kanjivg_subset):
    junctions = 0
    for i in range(len(kanjivg_subset)):
        rng = np.random.default_rng([3, i])
        strokes, hw = augmenter(kanjivg_subset.glyph(i), rng)
        out = renderer(strokes, hw)
        check_invariants(out, hw)
        junctions += len(local_maxima(out["keypoints"][1]))
    assert junctions > len(kanjivg_subset)  # kanji are full of touching strokes


def test_offset_points_onto_a_curve(renderer):
    """On a circle the exact nearest point is radial: offsets must match it closely."""
    t = np.linspace(0, 2 * np.pi, 400)
    c, r = np.array([32.2, 31.7]), 20.0
    circle = (c + r * np.stack([np.cos(t), np.sin(t)], axis=1)).astype(np.float32)
    out = renderer([circle], np.array([1.5]))
    ys, xs = np.nonzero(out["ink"][0] >= 0.5)
    centre = np.stack([xs + 0.5, ys + 0.5], axis=1)
    radial = centre - c
    expected = radial / np.linalg.norm(radial, axis=1, keepdims=True) * r - radial
    got = out["offset"][:, ys, xs].T
    assert np.abs(got - expected).max() < 0.05

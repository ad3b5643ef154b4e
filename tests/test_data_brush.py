"""Brush ink (``data=hanzi``, ``data=mixed``): outlines give the ink, medians the rest."""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli, tiny
from inktrace_train.config.schema import DataConfig
from inktrace_train.data import Renderer, npzcache
from inktrace_train.data.brush import BrushGlyph, Outlines, fill
from inktrace_train.data.device_batch import Centerlines
from inktrace_train.data.glyphs import MixedStrokes
from inktrace_train.data.hanzi import HanziStrokes
from inktrace_train.data.kanjivg import split_of
from inktrace_train.train.build import make_augmenter

SAMPLE = Path(__file__).parent / "data" / "hanzi"
SIZE = 64


def area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    return HanziStrokes("test", 0.05, 0.05, str(SAMPLE), str(tmp_path_factory.mktemp("cache")))


def test_the_sample_splits_by_codepoint_like_kanjivg(tmp_path):
    for split in ("train", "val", "test"):
        source = HanziStrokes(split, 0.05, 0.05, str(SAMPLE), str(tmp_path))
        assert len(source) == 16
        assert all(split_of(source.name(i), 0.05, 0.05) == split for i in range(len(source)))
    assert (SAMPLE / "ARPHICPL.TXT").exists()


def test_a_packed_tgz_reads_like_its_folder_and_a_corrupt_cache_is_rebuilt(tmp_path, caplog):
    packed = tmp_path / "hanzi-writer-data-2.0.1.tgz"
    with tarfile.open(packed, "w:gz") as tar:
        tar.add(SAMPLE, arcname="package")
    a = HanziStrokes("val", 0.05, 0.05, str(SAMPLE), str(tmp_path / "c1"))
    b = HanziStrokes("val", 0.05, 0.05, str(packed), str(tmp_path / "c2"))
    for i in range(len(a)):
        ga, gb = a.glyph(i), b.glyph(i)
        assert a.name(i) == b.name(i)
        assert all(
            np.array_equal(x, y) for x, y in zip(ga.outlines + ga.medians, gb.outlines + gb.medians, strict=True)
        )
    cache = next((tmp_path / "c1").glob("hanzi-*.npz"))
    cache.write_bytes(cache.read_bytes()[:200])
    npzcache.forget()
    with caplog.at_level(logging.WARNING):
        again = HanziStrokes("val", 0.05, 0.05, str(SAMPLE), str(tmp_path / "c1"))
    assert "unusable" in caplog.text and len(again) == len(a)


def test_a_bar_of_brush_ink_has_its_width_and_its_skeleton():
    # A 20 x 6 px bar with its median along the middle: half-width 3, ink the bar (OpenCV fills
    # boundary sub-pixels inclusively: up to 1/4 px more along each axis, 81 x 25 / 16 = 126.6).
    outline = np.array([[20, 29], [40, 29], [40, 35], [20, 35]], np.float32)
    median = np.array([[22, 32], [38, 32]], np.float32)
    t = Renderer(SIZE)([median], Outlines([outline]))
    assert 120.0 <= float(t["ink"].sum()) <= 126.6 and t["ink"][0, 31, 30] == 1.0
    on = t["skeleton"][0] > 0.5
    assert on.sum() == 17 and on[32, 22:39].all()  # x = 22 .. 38 on row y = 32
    assert np.all(np.abs(t["width"][0][32, 24:37] - 3.0) < 0.2)  # near the ends: the distance to the end
    assert np.all(t["width"][0][32, [22, 38]] < 2.6)
    assert t["keypoints"][0].max() == 1.0 and t["keypoints"][1].max() == 0.0  # two ends, no junction
    with pytest.raises(ValueError, match=r"data\.renderer=cpu"):
        Centerlines(SIZE)([median], Outlines([outline]))


def test_augmented_outlines_move_with_their_medians(test_split):
    # hairlines off: their ink lies outside the outlines (test_data_pen covers them on brush glyphs)
    augment, render = make_augmenter(DataConfig(hairlines=0.0)), Renderer(SIZE)
    for i in range(len(test_split)):
        glyph = test_split.glyph(i)
        assert isinstance(glyph, BrushGlyph) and len(glyph.medians) == len(glyph.outlines)
        rng = np.random.default_rng(i)
        medians, pen = augment(glyph, rng)
        t = render(medians, pen)
        ink = t["ink"][0]
        assert abs(float(ink.sum()) - float(fill(pen.polygons, SIZE).sum())) < 1e-3
        union = sum(area(p) for p in pen.polygons)
        rim = sum(np.linalg.norm(np.diff(p, axis=0, append=p[:1]), axis=1).sum() for p in pen.polygons) / 8
        assert 0.6 * union < ink.sum() <= union + rim  # strokes overlap; the fill adds <= 1/8 px a side
        skeleton = t["skeleton"][0] > 0.5
        # The medians lie inside the moved outlines (as in the data, where ~2 % of median pixels
        # reach into tapering tips thinner than half a pixel: 98.3 % inside, unaugmented).
        assert (ink[skeleton] >= 0.5).mean() > 0.9
        assert (ink > 0).sum() and not ink[[0, -1]].any() and not ink[:, [0, -1]].any()  # inside the canvas
        widths = t["width"][0][ink >= 0.5]
        assert widths.min() >= 0.5 and np.median(widths) < 4


def test_mixed_interleaves_its_sources(test_split):
    other = [np.zeros((2, 2), np.float32)]

    class Pen:
        def __len__(self):
            return 3

        def glyph(self, index, rng=None):
            return other

    mixed = MixedStrokes(Pen(), test_split)
    assert len(mixed) == 3 + len(test_split)
    assert mixed.glyph(0) is other and isinstance(mixed.glyph(1), BrushGlyph) and mixed.glyph(6) is other


def test_a_hanzi_run_trains_and_the_data_must_be_named(workdir):
    proc = run_cli(
        tiny("data=hanzi", f"data.hanzi_dir={SAMPLE}", "data.train_samples=32", "data.val_samples=16"), cwd=workdir
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(tiny("data=mixed"), cwd=workdir)
    assert (
        proc.returncode != 0 and "data.hanzi_dir" in proc.stderr and "npm pack hanzi-writer-data@2.0.1" in proc.stderr
    )
    proc = run_cli(tiny("data=hanzi", f"data.hanzi_dir={SAMPLE}", "data.renderer=device"), cwd=workdir)
    assert proc.returncode != 0 and "data.renderer=device" in proc.stderr
    proc = run_cli(tiny("data=hanzi", "data.hanzi_dir=/nonexistent/hanzi.tgz"), cwd=workdir)
    assert proc.returncode != 0 and "/nonexistent/hanzi.tgz" in proc.stderr


def test_crossing_outlines_are_inked_where_they_cross():
    """The ink is the union of the strokes' outlines (one fill call for all of them would leave
    their overlap blank by the even-odd rule)."""
    bar = np.array([[10, 30], [50, 30], [50, 34], [10, 34]], np.float32)
    post = np.array([[28, 10], [32, 10], [32, 50], [28, 50]], np.float32)
    ink = fill([bar, post], SIZE)
    assert ink[30:34, 28:32].min() == 1.0
    assert np.all(ink >= np.maximum(fill([bar], SIZE), fill([post], SIZE)))  # more where both cover part of a pixel

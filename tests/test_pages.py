"""Pages: glyphs found where they were drawn, traced in page coordinates, in batches; the Tracer API."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from inktrace_train.config.schema import DataConfig
from inktrace_train.data.kanjivg import KanjiVGStrokes
from inktrace_train.data.page import blank_page, draw_glyph
from inktrace_train.errors import ToolError
from inktrace_train.evaluation.pagefiles import page_svg
from inktrace_train.evaluation.pages import find_glyphs
from inktrace_train.evaluation.tracer import Tracer
from test_predict import checkpoint, png_claiming  # noqa: F401  (checkpoint: the tiny full-heads fixture)

# (size px, gap after it as a share of its size) per glyph, row by row: varied sizes and spacing.
ROWS = [[(70, 0.3), (110, 0.45), (45, 0.6), (90, 0.35), (60, 0.3)], [(100, 0.35), (50, 0.5), (80, 0.3), (120, 0.3)]]


@pytest.fixture(scope="module")
def test_split():
    d = DataConfig()
    return KanjiVGStrokes("test", d.val_fraction, d.test_fraction, d.cache_dir)


def draw_test_page(test_split):
    """ROWS of test-split glyphs on one page; the first glyph of each row touches the left edge,
    the first row the top edge, the last glyph the right and bottom edges."""
    page = blank_page(290, 640)
    drawn, k, y = [], 0, 0.0
    for r, row in enumerate(ROWS):
        x = 0.0
        for size, gap in row:
            top = y if r == 0 else y + 10
            if r == len(ROWS) - 1 and (size, gap) == row[-1]:  # measured on scratch paper, then put in the corner
                trial = draw_glyph(blank_page(size, size), test_split.glyph(k), 0, 0, size)
                x, top = 640 - trial.box[2], 290 - trial.box[3]
            drawn.append(draw_glyph(page, test_split.glyph(k), x, top, size))
            x, k = drawn[-1].box[2] + gap * size, k + 1
        y = max(g.box[3] for g in drawn) + 30
    return page, drawn


def centreline_maps(ink: np.ndarray) -> dict:
    """A stand-in model that reads the ink perfectly enough: skeleton = ink >= 0.5 (the tracer
    thins it), no tangent information. Tests the page plumbing independent of training."""
    skeleton = (ink[:, :1] >= 0.5).astype(np.float32)
    return {"skeleton": skeleton, "ink": skeleton, "tangent": np.zeros((len(ink), 2, *ink.shape[2:]), np.float32)}


def test_every_glyph_of_a_page_is_found_where_it_was_drawn(test_split):
    page, drawn = draw_test_page(test_split)
    _, regions = find_glyphs(255 - page)
    assert len(regions) == len(drawn) == 9
    for region, glyph in zip(regions, drawn, strict=True):  # reading order: rows, left to right
        assert np.abs(np.subtract(region.box, glyph.box)).max() <= 2, (region.box, glyph.box)
    assert min(r.box[0] for r in regions) == 0 and min(r.box[1] for r in regions) == 0
    assert max(r.box[2] for r in regions) == 640 and max(r.box[3] for r in regions) == 290


def test_a_smaller_character_close_beside_a_larger_one_stays_its_own_glyph(test_split):
    """The tracing guide's page (a 57 px 腹 15 px from a 92 px G) was found as one glyph: each
    join was within 1.75 times the grown box, so the whole page joined one glyph at a time."""
    from helpers import REPO

    assert len(find_glyphs(255 - cv2.imread(str(REPO / "docs/page.png"), cv2.IMREAD_GRAYSCALE))[1]) == 10
    for k in range(0, 40, 2):  # 20 pairs: 57 px beside 92 px at a gap of 0.16 of the larger (170 of 225 joined)
        page = blank_page(112, 220)
        first = draw_glyph(page, test_split.glyph(k), 10, 10, 92)
        second = draw_glyph(page, test_split.glyph(k + 1), first.box[2] + 15, 27, 57)
        boxes = [r.box for r in find_glyphs(255 - page)[1]]
        assert len(boxes) == 2, (k, boxes)
        for box, glyph in zip(boxes, (first, second), strict=True):
            assert np.abs(np.subtract(box, glyph.box)).max() <= 2.5  # the pen's anti-aliased fringe


def test_strokes_lie_on_the_ink_in_page_coordinates(test_split):
    page, drawn = draw_test_page(test_split)
    calls = []
    tracer = Tracer(lambda ink: calls.append(len(ink)) or centreline_maps(ink), size=64, batch_size=4)
    result = tracer.trace_page(page)
    assert calls == [4] * 8 + [1] * 4 and len(result.glyphs) == 9  # batches of at most batch_size glyphs, a call a view
    distance = cv2.distanceTransform((page > 127).astype(np.uint8), cv2.DIST_L2, 5)  # to the nearest ink
    for glyph, truth in zip(result.glyphs, drawn, strict=True):
        points = np.concatenate([s.points for s in glyph.strokes])
        scale = (truth.box[2] - truth.box[0]) / (0.85 * 64)  # page px per canvas px
        inside = (points >= [glyph.box[0], glyph.box[1]]).all(1) & (points <= [glyph.box[2], glyph.box[3]]).all(1)
        assert inside.all()
        off_ink = distance[points[:, 1].astype(int), points[:, 0].astype(int)]
        assert off_ink.max() <= scale + 1, off_ink.max()
        # and the strokes follow the drawn centrelines: every true point has a traced point near it
        true_points = np.concatenate(truth.strokes)
        gaps = np.sqrt(((true_points[:, None] - points[None]) ** 2).sum(-1)).min(1)
        assert np.median(gaps) <= scale + 1 and np.percentile(gaps, 90) <= truth.pen + 2 * scale
    one_batch = Tracer(centreline_maps, size=64, batch_size=64).trace_page(page)  # batching changes nothing
    assert [len(g.strokes) for g in one_batch.glyphs] == [len(g.strokes) for g in result.glyphs]


def test_a_page_of_no_ink_one_glyph_and_noise(test_split):
    tracer = Tracer(centreline_maps, size=64)
    empty = tracer.trace_page(blank_page(300, 400))
    assert empty.glyphs == [] and (empty.width, empty.height) == (400, 300)
    assert ET.fromstring(page_svg(empty)).get("viewBox") == "0 0 400 300"
    one = blank_page(300, 400)
    drawn = draw_glyph(one, test_split.glyph(3), 150, 60, 140)
    (glyph,) = tracer.trace_page(one).glyphs
    assert np.abs(np.subtract(glyph.box, drawn.box)).max() <= 2 and len(glyph.strokes) >= 1
    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(0.85, 0.08, (600, 800)), 0, 1)  # paper grain
    noise[rng.random(noise.shape) < 0.01] = 0.0  # and 1 % dark specks
    assert tracer.trace_page((noise * 255).astype(np.uint8)).glyphs == []


def test_columns_read_right_to_left_and_single_keeps_the_whole_image(test_split):
    page = blank_page(400, 300)
    right = [draw_glyph(page, test_split.glyph(i), 180, 10 + 130 * i, 100) for i in range(3)]
    left = [draw_glyph(page, test_split.glyph(3 + i), 20, 10 + 130 * i, 100) for i in range(3)]
    tracer = Tracer(centreline_maps, size=64)
    found = tracer.trace_page(page).glyphs
    expected = right + left
    assert all(np.abs(np.subtract(g.box, t.box)).max() <= 2 for g, t in zip(found, expected, strict=True))
    (whole,) = tracer.trace_page(page, single=True).glyphs
    boxes = np.array([t.box for t in expected])
    union = (*boxes[:, :2].min(0), *boxes[:, 2:].max(0))
    assert np.abs(np.subtract(whole.box, union)).max() <= 2


def test_a_huge_image_is_refused_from_its_header(tmp_path):
    tracer = Tracer(centreline_maps, size=64, max_pixels=10_000)
    with pytest.raises(ToolError, match="over the limit of 10,000 pixels"):
        tracer.trace(np.zeros((200, 100), np.uint8))
    png_claiming(tmp_path / "big.png", 9_000, 8_000)  # over the default limit, under Pillow's own
    with pytest.raises(ToolError, match=r"big.png: 9000x8000 is over the limit of 64,000,000 pixels"):
        Tracer(centreline_maps, size=64).trace(tmp_path / "big.png")
    png_claiming(tmp_path / "bomb.png", 100_000, 100_000)  # over Pillow's decompression-bomb limit
    with pytest.raises(ToolError, match=r"bomb.png: its header claims more than 178,956,970 pixels, over the limit"):
        Tracer(centreline_maps, size=64).trace(tmp_path / "bomb.png")


def test_the_python_api_as_documented(checkpoint, tmp_path, test_split):  # noqa: F811
    page = blank_page(200, 400)
    for i in range(3):
        draw_glyph(page, test_split.glyph(i), 20 + 130 * i, 40, 100)
    cv2.imwrite(str(tmp_path / "page.png"), page)
    script = textwrap.dedent(
        f"""
        import json, sys
        import cv2
        from inktrace_train import Tracer
        tracer = Tracer.from_checkpoint({str(checkpoint)!r})
        strokes = tracer.trace("page.png")                  # a path: every stroke, in page pixels
        page = tracer.trace_page(cv2.imread("page.png"))    # an array (colour or grey): glyphs and boxes
        print(json.dumps({{"n": len(strokes), "page": page.to_json()}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["page"]["image"] == {"width": 400, "height": 200}
    assert len(out["page"]["glyphs"]) == 3
    assert out["n"] == sum(len(g["strokes"]) for g in out["page"]["glyphs"])
    for g in out["page"]["glyphs"]:
        for s in g["strokes"]:
            xy = np.array(s["points"])
            assert (xy >= 0).all() and (xy[:, 0] <= 400).all() and (xy[:, 1] <= 200).all()
            assert s["width"] is None or s["width"] >= 0

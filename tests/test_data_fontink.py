"""Font ink (data.font_ink): font glyphs labelled with strokes (a model's traces, or the character's
own strokes fitted onto the ink) as brush glyphs, their outlines cut from the font's own ink, the
file they are kept in, the training source and its share, and scripts/font_ink.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import REPO
from inktrace_train.config.schema import Config, DataConfig, validate
from inktrace_train.data import brush, fontink
from inktrace_train.data.glyphs import DataError, MixedStrokes
from inktrace_train.data.render import Renderer
from inktrace_train.errors import ConfigError
from inktrace_train.evaluation.tracer import Tracer
from inktrace_train.train.build import make_augmenter, make_source

SIZE = 96
SCRIPT = REPO / "scripts" / "font_ink.py"
MODEL = REPO / "models" / "results.pth"


def bars() -> tuple[np.ndarray, list[np.ndarray]]:
    """A cross of two 9 px bars (ink) and their centerlines."""
    ink = np.zeros((SIZE, SIZE), np.uint8)
    cv2.rectangle(ink, (10, 44), (85, 52), 1, -1)
    cv2.rectangle(ink, (44, 10), (52, 85), 1, -1)
    return ink.astype(bool), [np.array([[14.5, 48.5], [81.5, 48.5]]), np.array([[48.5, 14.5], [48.5, 81.5]])]


def filled(polygons: list[np.ndarray]) -> np.ndarray:
    return brush.fill(polygons, SIZE) > 0.5


def test_stroke_outlines_redraw_the_ink_one_outline_per_stroke():
    ink, medians = bars()
    polygons = fontink.stroke_outlines(ink, medians)
    assert polygons is not None and len(polygons) == 2
    drawn = filled(polygons)
    assert (drawn & ink).sum() / (drawn | ink).sum() > 0.95  # the union is the font's ink
    for polygon, median in zip(polygons, medians, strict=True):  # each stroke owns its bar, crossing included
        own = filled([polygon])
        x, y = np.round(median.mean(0) - 0.5).astype(int)
        assert own[y, x] and own.sum() > 0.8 * 76 * 9


def test_ink_no_stroke_reaches_goes_to_the_nearest_stroke():
    ink, medians = bars()
    ink[30:44, 76:86] = True  # a serif-like blob on the horizontal bar's end, beyond its tube
    polygons = fontink.stroke_outlines(ink, medians)
    assert polygons is not None
    assert filled([polygons[0]])[36, 80] and not filled([polygons[1]])[36, 80]


def test_growing_an_outline_makes_a_bolder_weight_of_the_same_strokes():
    ink, medians = bars()
    regular, bold = fontink.stroke_outlines(ink, medians), fontink.stroke_outlines(ink, medians, grow=3)
    for thin, thick in zip(regular, bold, strict=True):
        assert cv2.contourArea(thick) > cv2.contourArea(thin) + 3 * 76


def test_an_outline_that_would_enclose_paper_is_refused():
    ink = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(ink, (48, 48), 30, 1, 8)  # a ring traced as one stroke: its outline has a hole
    angles = np.linspace(0, 2 * np.pi, 90)
    ring = np.stack([48.5 + 30 * np.cos(angles), 48.5 + 30 * np.sin(angles)], 1)
    assert fontink.stroke_outlines(ink.astype(bool), [ring]) is None


def test_smooth_keeps_the_ends_and_evens_out_a_pixel_staircase():
    staircase = np.array([[x + 0.5, 10.5 + (x // 2)] for x in range(20)], float)
    out = fontink.smooth(staircase)
    assert np.allclose(out[0], staircase[0]) and np.allclose(out[-1], staircase[-1])
    steps = np.linalg.norm(np.diff(out, axis=0), axis=1)
    assert steps.max() < 1.2 and np.abs(np.diff(out[2:-2, 1], 2)).max() < 0.3


def write_file(path: Path) -> Path:
    ink, medians = bars()
    glyphs = [fontink.to_unit(medians, fontink.stroke_outlines(ink, medians, grow)) for grow in (0, 3)]
    fontink.save(path, glyphs, ["test/十/0", "test/十/3"])
    return path


def test_a_font_ink_file_round_trips_and_trains_as_brush_ink(tmp_path):
    path = write_file(tmp_path / "ink.npz")
    source = fontink.FontInkGlyphs(path)
    assert len(source) == 2 and source.name(1) == "test/十/3"
    glyph = source.glyph(0)
    points = np.concatenate(glyph.outlines)
    assert len(glyph.medians) == 2 and points.min() >= 0 and points.max() <= 1  # fitted to the unit square
    rng = np.random.default_rng(0)
    targets = Renderer(64)(*make_augmenter(DataConfig())(glyph, rng))
    assert targets["ink"].max() == pytest.approx(1.0) and targets["skeleton"].sum() > 40
    assert all(np.isfinite(v).all() for v in targets.values())


def test_font_ink_joins_the_training_split_only(tmp_path):
    data = DataConfig(source="synthetic", font_ink=str(write_file(tmp_path / "ink.npz")))
    train = make_source(data, "train")
    assert isinstance(train, MixedStrokes) and isinstance(train.sources[-1], fontink.FontInkGlyphs)
    assert not isinstance(make_source(data, "val"), MixedStrokes)  # the validation set stays the source's


class Numbered:
    """A source whose glyph is (its tag, the index it was asked for)."""

    def __init__(self, tag: str, n: int) -> None:
        self.tag, self.n = tag, n

    def __len__(self) -> int:
        return self.n

    def glyph(self, index, rng=None):
        return self.tag, index


def test_weighted_sources_take_their_share_and_each_walks_its_glyphs_in_order():
    mixed = MixedStrokes(Numbered("a", 100), Numbered("f", 100), weights=[2, 1])
    drawn = [mixed.glyph(i) for i in range(9)]
    assert drawn == [("a", 0), ("a", 1), ("f", 0), ("a", 2), ("a", 3), ("f", 1), ("a", 4), ("a", 5), ("f", 2)]
    even = MixedStrokes(Numbered("a", 5), Numbered("f", 5))  # no weights: one each, as before
    assert [even.glyph(i) for i in range(3)] == [("a", 0), ("f", 0), ("a", 1)]
    for weights in ([0], [1.5], [1, 1]):
        with pytest.raises(ValueError, match="one integer weight >= 1 per source"):
            MixedStrokes(Numbered("a", 1), weights=weights)


@pytest.mark.parametrize("share", [0.2, 1 / 6, 0.5])
def test_font_ink_share_is_the_share_of_training_glyphs_from_the_fonts(tmp_path, share):
    data = DataConfig(source="synthetic", font_ink=str(write_file(tmp_path / "ink.npz")), font_ink_share=share)
    train = make_source(data, "train")
    drawn = [train.glyph(i, np.random.default_rng(i)) for i in range(600)]
    fonts = sum(isinstance(g, brush.BrushGlyph) for g in drawn)  # the file's glyphs; synthetic ones are lists
    assert fonts / len(drawn) == pytest.approx(share, abs=1e-6)
    assert train.weights == (1, 1) or share != 0.5  # a half is one glyph each


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(font_ink="ink.npz", font_ink_share=1.0), r"data\.font_ink_share=1\.0 is out of range: .* \[0\.01, 0\.99"),
        (dict(font_ink="ink.npz", font_ink_share=0.004), r"data\.font_ink_share=0\.004 is out of range"),
        (dict(font_ink_share=0.2), r"data\.font_ink_share is the share of data\.font_ink's glyphs: set data\.font_ink"),
    ],
)
def test_a_font_ink_share_out_of_range_or_without_font_ink_is_named(options, message):
    with pytest.raises(ConfigError, match=message):
        validate(Config(data=DataConfig(**options)))


@pytest.mark.parametrize("content", [None, b"not a zip", "other npz"])
def test_a_missing_or_foreign_font_ink_file_is_named(tmp_path, content):
    path = tmp_path / "ink.npz"
    if content == "other npz":
        np.savez(path, names=np.array(["x"]))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=r"data\.font_ink=.*ink\.npz"):
        fontink.FontInkGlyphs(path)


def test_the_device_renderer_refuses_font_ink():
    cfg = Config(data=DataConfig(font_ink="ink.npz", renderer="device"))
    with pytest.raises(ConfigError, match=r"data\.font_ink"):
        validate(cfg)


EVAL = pytest.mark.skipif(importlib.util.find_spec("fontTools") is None, reason="fonts need the eval extra")


@EVAL
def test_the_script_refuses_fonts_that_score_or_choose_models(tmp_path):
    script = [sys.executable, str(SCRIPT), str(MODEL), "--fonts-dir", str(REPO / "tests" / "data" / "fonts")]
    proc = subprocess.run([*script, "--out", str(tmp_path / "ink.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "must not train one" in proc.stderr and "klee-one" in proc.stderr, proc.stderr
    assert not (tmp_path / "ink.npz").exists()


@EVAL
def test_the_script_refuses_a_font_drawing_a_scored_fonts_ideographs_under_another_name(tmp_path):
    """kaisei-tokumin draws kaisei-decol's ideographs: as training ink it would show the model a
    validation font. A copy of a sample font under another name stands for it."""
    import json
    import shutil

    shutil.copytree(REPO / "tests" / "data" / "fonts" / "klee-one", tmp_path / "train" / "my-klee")
    meta = {"name": "@fontsource/my-klee", "version": "1.0.0"}
    (tmp_path / "train" / "my-klee" / "package.json").write_text(json.dumps(meta))
    (tmp_path / "train" / "my-klee" / "metadata.json").write_text(json.dumps({"subsets": ["japanese"]}))
    script = [sys.executable, str(SCRIPT), "--labels", "fitted", "--fonts-dir", str(tmp_path / "train")]
    scored = ["--scored-fonts", str(REPO / "tests" / "data" / "fonts")]
    out = ["--out", str(tmp_path / "ink.npz")]
    proc = subprocess.run([*script, *scored, *out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    sample = REPO / "tests" / "data" / "fonts"
    assert f"--fonts-dir {tmp_path / 'train'}: my-klee (klee-one, in {sample})" in proc.stderr
    assert "the same ideographs as a font that scores or chooses models" in proc.stderr
    assert not (tmp_path / "ink.npz").exists()
    proc = subprocess.run(
        [*script, "--scored-fonts", str(tmp_path / "nowhere"), *out], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and f"--scored-fonts {tmp_path / 'nowhere'}: no such folder" in proc.stderr


@EVAL
def test_the_script_names_a_missing_fonts_folder(tmp_path):
    script = [sys.executable, str(SCRIPT), str(MODEL), "--fonts-dir", str(tmp_path / "nowhere")]
    proc = subprocess.run([*script, "--out", str(tmp_path / "ink.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "nowhere: no such folder" in proc.stderr, proc.stderr


def _script():
    spec = importlib.util.spec_from_file_location("font_ink", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _klee_one():
    """The bundled pen font's package, its sample glyphs as the fonts set reads them, and the
    characters' KanjiVG strokes."""
    from inktrace_train.data.fonts import find_fonts, split_strokes
    from inktrace_train.evaluation.fontset import font_set

    fonts, _, _ = font_set(str(REPO / "tests" / "data" / "fonts"), 3, 64, (0.05, 0.05))
    packages = {p.font.name: p for p in find_fonts(REPO / "tests" / "data" / "fonts")[0]}
    strokes = dict(split_strokes("ja", 0.05, 0.05, split="test"))
    return packages["klee-one"], fonts["klee-one"], strokes


@EVAL
def test_the_shipped_model_labels_the_glyphs_it_traces_right():
    script, tracer = _script(), Tracer.from_checkpoint(MODEL)
    package, glyphs, strokes = _klee_one()
    labelled = 0
    for glyph in glyphs:
        image = package.render(glyph.char)
        traced = len(tracer.strokes(tracer.maps(glyph.canvas)))
        kept = script.label(image, strokes[glyph.char], tracer.size, tracer)
        assert (kept is not None) <= (traced == glyph.true_count)  # only what it traces right
        for grow, brush_glyph in kept or []:
            assert grow in fontink.GROW
            assert len(brush_glyph.medians) == len(brush_glyph.outlines) == glyph.true_count
        labelled += kept is not None
    assert labelled >= 1  # the pen font's 3 sample characters: the model traces some of them right
    assert script.label(package.render(glyphs[0].char), [None] * 99, tracer.size, tracer) is None


@EVAL
def test_fitted_labels_are_the_characters_own_strokes_on_the_fonts_ink():
    script = _script()
    package, glyphs, strokes = _klee_one()
    labelled = 0
    for glyph in glyphs:
        kept = script.label(package.render(glyph.char), strokes[glyph.char], 64, None)
        for _, brush_glyph in kept or []:
            assert len(brush_glyph.medians) == glyph.true_count  # every known stroke, in its order
            ink = filled([o * SIZE for o in brush_glyph.outlines])
            for median in brush_glyph.medians:  # each lies on the font's ink
                xy = np.clip((median * SIZE).astype(int), 0, SIZE - 1)
                assert ink[xy[:, 1], xy[:, 0]].mean() > 0.95
        labelled += kept is not None
    assert labelled >= 2  # the pen font's 3 sample characters fit (measured: all 3)


@EVAL
def test_labels_model_needs_a_model_fitted_none_and_fitted_a_split(tmp_path):
    fonts = ["--fonts-dir", str(tmp_path), "--out", str(tmp_path / "ink.npz")]
    for args in (["--labels", "fitted", str(MODEL)], ["--labels", "model"]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *args, *fonts], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and "--labels model needs MODEL" in proc.stderr, proc.stderr
    for args, message in (
        (["--labels", "fitted", "--split-fractions", "0.6", "0.5"], "two shares >= 0 that sum to less than 1"),
        ([str(MODEL), "--split-fractions", "0.1", "0.1"], "--split-fractions is for --labels fitted"),
    ):
        proc = subprocess.run([sys.executable, str(SCRIPT), *args, *fonts], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr

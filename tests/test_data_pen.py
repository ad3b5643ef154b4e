"""The pen options (issue 21, point 4): wide and thin pens, width along a stroke, broad nibs,
flat ends, outline ink and hairlines, on the CPU renderer (the reference), on the device
renderer, and through the config and a training run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from helpers import run_cli, tiny
from inktrace_train.config.schema import ConfigError, DataConfig, to_config
from inktrace_train.data import InkDataset, KanjiVGStrokes, Pen, Renderer, SyntheticStrokes
from inktrace_train.data.brush import BrushGlyph
from inktrace_train.data.centerline import resample
from inktrace_train.data.device_batch import Centerlines, collate_centerlines
from inktrace_train.data.pen import JOIN_WIDTH, Hairlines
from inktrace_train.data.render import INK_THRESHOLD
from inktrace_train.launch.compose import config_dir, register
from inktrace_train.train.build import make_augmenter, make_device_renderer, renders_on_device

register()
SIZE = 64
TARGETS = ("skeleton", "keypoints", "tangent")  # the stroke structure: never changed by the pen


def line(*points):
    return np.array(points, dtype=np.float32)


def render(strokes, pen):
    return Renderer(SIZE)(strokes, pen)


def render_on_device(strokes, pen, d: DataConfig):
    item = {k: torch.from_numpy(v) for k, v in Centerlines(SIZE)(strokes, pen).items()}
    batch = collate_centerlines([dict(item, visible=torch.ones(1, SIZE, SIZE))])
    return {k: v[0].numpy() for k, v in make_device_renderer(d).__call__(batch).items()}


def exact_ink(strokes, half_width_at, size=SIZE, flat=False):
    """Brute force: coverage clip(h + 0.5 - d) of the nearest of the centerline points every 0.02 px."""
    samples, sid, arc = resample([np.asarray(s, np.float64) for s in strokes], step=0.02)
    ys, xs = np.mgrid[:size, :size] + 0.5
    centre = np.stack([xs.ravel(), ys.ravel()], 1)
    ink = np.zeros(len(centre))
    for lo in range(0, len(centre), 512):
        d = np.linalg.norm(centre[lo : lo + 512, None] - samples[None], axis=2)
        ink[lo : lo + 512] = np.clip(half_width_at(sid, arc) + 0.5 - d, 0, 1).max(1)
    return ink.reshape(size, size)


# --- 1. pen width: up to 7 px and narrow ones; the width target stays the true half width ---


def test_a_7px_pen_inks_7px_and_its_width_target_says_3_5():
    out = render([line([10, 31.7], [54, 31.7])], Pen(np.array([3.5], np.float32)))
    columns = out["ink"][0][:, 20:45]
    assert np.allclose(columns.sum(0), 7.0, atol=0.02)  # the ink across the stroke: 7 px of coverage
    assert ((columns > 0.99).sum(0) == 6).all()  # 6 full pixels and two partial ones
    on = out["ink"][0] >= INK_THRESHOLD
    assert np.all(out["width"][0][on] == 3.5) and on.sum() > 44 * 7


def test_a_glyph_with_a_7px_pen_is_fitted_and_drawn_through_the_config():
    d = DataConfig(pen_width_min=7.0, pen_width_max=7.0)
    assert to_config(compose_config(["data.pen_width_min=7", "data.pen_width_max=7"])).data.pen_width_max == 7.0
    source, augment = SyntheticStrokes(6), make_augmenter(d)
    for i in range(10):
        rng = np.random.default_rng([5, i])
        strokes, pen = augment(source.glyph(0, rng), rng)
        assert np.all(pen.half_width == 3.5)
        out = render(strokes, pen)
        on = out["ink"][0] >= INK_THRESHOLD
        assert np.all(out["width"][0][on] == 3.5)
        border = np.concatenate([out["ink"][0][[0, -1], :].ravel(), out["ink"][0][:, [0, -1]].ravel()])
        assert border.max() < 0.5  # fitted inside (the wobble moves strokes after the fit, by up to 0.4 px)


def test_log_uniform_widths_keep_thin_pens_common():
    def widths(sampling):
        augment = make_augmenter(DataConfig(pen_width_min=0.8, pen_width_max=7.0, pen_width_sampling=sampling))
        rng = np.random.default_rng(0)
        return np.array([2 * augment.pen.half_widths(1, rng)[0] for _ in range(4000)])

    uniform, log_uniform = widths("uniform"), widths("log_uniform")
    assert log_uniform.min() >= 0.8 and log_uniform.max() <= 7.0
    # Below 2 px: ln(2/0.8) / ln(7/0.8) = 42 % of log-uniform pens, 1.2 / 6.2 = 19 % of uniform ones.
    assert abs(np.mean(log_uniform < 2) - 0.42) < 0.03 and abs(np.mean(uniform < 2) - 0.19) < 0.03
    assert abs(np.median(log_uniform) - np.sqrt(0.8 * 7.0)) < 0.15


def test_a_narrow_pen_keeps_its_skeleton_and_true_width():
    out = render([line([10, 20.5], [54, 20.5])], Pen(np.array([0.35], np.float32)))
    assert out["skeleton"][0][20, 10:55].all()
    np.testing.assert_allclose(out["ink"][0][20, 20:45], 0.85, atol=1e-6)  # clip(0.35 + 0.5 - 0)
    assert np.all(out["width"][0][out["ink"][0] >= INK_THRESHOLD] == np.float32(0.35))


# --- 2. width along a stroke (pressure, broad nib) and its ends (round, flat) ---


def test_a_tapered_stroke_width_target_falls_toward_its_ends():
    stroke = [line([8, 32.5], [56, 32.5])]
    taper = np.array([[0.2, 0.3, 0.4, 0.4, 0.0]], np.float32)  # ends at 20 % and 30 %, over 40 % each
    out, plain = render(stroke, Pen(np.array([3.0], np.float32), taper)), render(stroke, np.array([3.0]))
    row = out["width"][0][32, 8:57]
    middle = len(row) // 2
    assert np.all(np.diff(row[: middle - 4]) > 0) and np.all(np.diff(row[middle + 4 :]) < 0)
    assert row[middle] == pytest.approx(3.0, abs=1e-3) and row[0] < 0.9 and row[-1] < 1.1
    assert out["ink"][0][:, 12].sum() < plain["ink"][0][:, 12].sum() - 3  # thinner ink near the start
    for key in TARGETS:
        assert np.array_equal(out[key], plain[key]), key


def test_a_broad_nib_thins_strokes_along_its_angle():
    strokes = [line([8, 10.5], [56, 10.5]), line([32.5, 20], [32.5, 60])]
    out = render(strokes, Pen(np.array([2.0, 2.0], np.float32), nib=(0.0, 0.6)))
    assert out["width"][0][10, 20] == pytest.approx(0.8, abs=1e-4)  # along the nib: 40 % of the width
    assert out["width"][0][40, 32] == pytest.approx(2.0, abs=1e-4)  # across it: all of it


def test_a_flat_end_leaves_no_ink_beyond_the_centerline_end_a_round_one_does():
    stroke = [line([10, 30.5], [40, 30.5])]  # ends on the edge between columns 39 and 40
    flat = render(stroke, Pen(np.array([2.0], np.float32), flat_caps=True))["ink"][0]
    round_ = render(stroke, Pen(np.array([2.0], np.float32)))["ink"][0]
    assert flat[:, 40:].max() < 1e-6 and flat[:, 11:39].max() == 1.0  # float32 sums: zero to 1e-7
    assert round_[:, 40:].sum() > 4 and round_[30, 41] == 1.0
    np.testing.assert_allclose(flat[:, 12:39], round_[:, 12:39], atol=1e-6)  # the same pen elsewhere


def test_where_a_thin_stroke_ends_inside_a_wide_one_the_wide_one_keeps_its_ink():
    """Swept ink is the union of the strokes: a tapered stem ending inside a wide bar (a T, the stem
    stopping short of the bar's centerline as KanjiVG strokes do) cuts no hole in the bar."""
    bar, stem = line([8, 20.5], [56, 20.5]), line([32.5, 58], [32.5, 21.5])
    taper = np.array([[1, 1, 0.1, 0.1, 0.0], [1, 0.15, 0.1, 0.3, 0.0]], np.float32)
    both = render([bar, stem], Pen(np.array([3.0, 2.0], np.float32), taper))["ink"][0]
    alone = render([bar], Pen(np.array([3.0], np.float32), taper[:1]))["ink"][0]
    assert np.all(both >= alone - 1e-6)
    assert both[18:23, 28:37].min() == 1.0  # the bar's core around the stem's tip


def test_sharp_corners_get_their_full_ink():
    """Off the outer side of a corner the nearest centerline point is the corner (brute force)."""
    stroke = [line([12, 10], [12.4, 50], [50, 50.3])]
    out = render(stroke, np.array([3.2]))
    exact = exact_ink(stroke, lambda sid, arc: 3.2)
    error = np.abs(out["ink"][0] - exact)
    assert error.max() < 0.1 and error.mean() < 1e-3  # the 0.35 px samples cut the corner a little


# --- 3. outline ink ---


def test_outline_ink_has_mitred_corners_and_the_same_targets():
    stroke = [line([12, 10], [12, 50], [50, 50])]
    pen = np.array([3.0], np.float32)
    outline, disk = render(stroke, Pen(pen, outline=True)), render(stroke, Pen(pen))
    # The outer corner (9..15, 47..53): a square there; the swept disk rounds it off.
    assert outline["ink"][0][52, 9] > 0.9 and disk["ink"][0][52, 9] < 0.3
    assert abs(outline["ink"].sum() - disk["ink"].sum()) < 0.03 * disk["ink"].sum()
    on = outline["ink"][0] >= INK_THRESHOLD
    assert np.all(outline["width"][0][on] == 3.0)
    for key in TARGETS:
        assert np.array_equal(outline[key], disk[key]), key
    flat = render(stroke, Pen(pen, flat_caps=True, outline=True))["ink"][0]
    assert flat[:8, :].max() == 0.0 and flat[:, 51:].max() == 0.0 and outline["ink"][0][:8, :].max() > 0.5


def test_outline_ink_is_refused_by_the_device_renderer():
    with pytest.raises(ValueError, match=r"outline_ink.*data\.renderer=cpu"):
        Centerlines(SIZE)([line([1, 1], [9, 9])], Pen(np.array([1.0], np.float32), outline=True))
    with pytest.raises(ConfigError, match=r"data\.renderer=device .* data\.outline_ink=0\.2 fills outlines"):
        to_config(compose_config(["data.renderer=device", "data.outline_ink=0.2"]))
    cfg = to_config(compose_config(["experiment=wide_ink"])).data
    assert cfg.outline_ink > 0 and not renders_on_device(cfg, torch.device("cuda"))  # auto picks the cpu
    assert renders_on_device(replace(cfg, outline_ink=0.0), torch.device("cuda"))


# --- 4. hairlines ---


@pytest.mark.parametrize("intensity", [(0.45, 0.3), (1.0, 1.0)])  # faint, and full-ink joins
def test_hairlines_add_ink_but_no_target(intensity):
    strokes = [line([10, 12.5], [30, 12.5]), line([40, 30.5], [40, 55.5]), line([15, 50], [25, 40])]
    hair = Hairlines(
        [line([30, 12.5], [38, 20], [40, 30.5]), line([40, 55.5], [25, 58], [15, 50])],
        np.array([0.4, 1.0], np.float32),
        np.array(intensity, np.float32),
    )
    pen = np.array([1.5, 1.5, 1.5], np.float32)
    with_hair, plain = render(strokes, Pen(pen, hairlines=hair)), render(strokes, Pen(pen))
    added = with_hair["ink"][0] - plain["ink"][0]
    assert added.min() >= 0 and (added > 0.1).sum() > 20 and with_hair["ink"][0][53:58, 24:29].max() > 0.15
    darkest = with_hair["ink"][0][plain["ink"][0] == 0].max()
    assert darkest < INK_THRESHOLD if max(intensity) < INK_THRESHOLD else darkest > 0.95  # faint, or stroke ink
    for key in (*TARGETS, "width", "offset"):  # at any darkness: ink only
        assert np.array_equal(with_hair[key], plain[key]), key


def test_hairlines_join_consecutive_strokes_of_pen_and_brush_glyphs():
    d = DataConfig(hairlines=1.0, hairline_gap=1.0, wobble=0.0)
    augment = make_augmenter(d)
    strokes = [line([0.2, 0.2], [0.4, 0.2]), line([0.6, 0.3], [0.6, 0.8]), line([0.605, 0.805], [0.6, 0.9])]
    rng = np.random.default_rng(1)
    out, pen = augment(strokes, rng)
    assert len(pen.hairlines.lines) == 1  # the second gap is under MIN_GAP (1 px)
    hair = pen.hairlines.lines[0]
    np.testing.assert_allclose(hair[0], out[0][-1], atol=1e-4)  # from the end of stroke 0 ...
    np.testing.assert_allclose(hair[-1], out[1][0], atol=1e-4)  # ... to the start of stroke 1
    assert d.hairline_intensity_min <= pen.hairlines.intensity[0] <= d.hairline_intensity_max
    outline = [line([0.1, 0.1], [0.5, 0.1], [0.5, 0.14], [0.1, 0.14]), line([0.6, 0.3], [0.64, 0.3], [0.64, 0.8])]
    brush = BrushGlyph(medians=[line([0.12, 0.12], [0.48, 0.12]), line([0.62, 0.32], [0.62, 0.78])], outlines=outline)
    medians, outlines = augment(brush, np.random.default_rng(2))
    assert len(outlines.hairlines.lines) == 1
    ink, plain = render(medians, outlines)["ink"], render(medians, replace(outlines, hairlines=Hairlines()))["ink"]
    assert (ink - plain).max() > 0.1 and (ink - plain).min() >= 0


def test_cursive_joins_are_full_ink_as_wide_as_the_stroke_they_leave():
    """data.cursive_joins: the gaps of a pen glyph joined as a cursive hand joins them, in full
    ink at JOIN_WIDTH of the pen, still with no target; a brush glyph keeps its outlines' ink."""
    d = DataConfig(hairlines=0.0, cursive_joins=1.0, hairline_gap=1.0, wobble=0.0, pen_width_min=4.0, pen_width_max=4.0)
    strokes = [line([0.2, 0.2], [0.4, 0.2]), line([0.6, 0.3], [0.6, 0.8]), line([0.3, 0.5], [0.3, 0.9])]
    out, pen = make_augmenter(d)(strokes, np.random.default_rng(1))
    joins = pen.hairlines
    assert len(joins.lines) == 2 and np.all(joins.intensity == 1.0)
    for k, join in enumerate(joins.lines):
        np.testing.assert_allclose(join[0], out[k][-1], atol=1e-4)
        np.testing.assert_allclose(join[-1], out[k + 1][0], atol=1e-4)
        low, high = JOIN_WIDTH
        assert low * pen.half_width[k] - 1e-6 <= joins.half_width[k] <= high * pen.half_width[k] + 1e-6
    joined, plain = render(out, pen), render(out, replace(pen, hairlines=Hairlines()))
    middle = np.round(joins.lines[0][len(joins.lines[0]) // 2] - 0.5).astype(int)  # a join pixel far from strokes
    assert plain["ink"][0][middle[1], middle[0]] == 0 and joined["ink"][0][middle[1], middle[0]] > 0.95
    for key in (*TARGETS, "width", "offset"):
        assert np.array_equal(joined[key], plain[key]), key
    brush = BrushGlyph(medians=strokes[:2], outlines=[line([0.1, 0.1], [0.5, 0.1], [0.5, 0.14])] * 2)
    assert not make_augmenter(d)(brush, np.random.default_rng(2))[1].hairlines.lines


# --- every sample a pure function of (seed, epoch, index); the geometry never depends on the pen ---

WIDE_INK = dict(
    pen_width_min=0.8,
    pen_width_max=7.0,
    pen_width_sampling="log_uniform",
    pen_pressure=0.5,
    pen_nib=0.3,
    pen_flat_caps=0.5,
    outline_ink=0.3,
    hairlines=0.5,
)


@pytest.mark.parametrize("renderer", ["cpu", "device"])
def test_samples_stay_a_pure_function_of_seed_epoch_and_index(renderer):
    source = SyntheticStrokes(6)
    d = DataConfig(**dict(WIDE_INK, outline_ink=0.3 if renderer == "cpu" else 0.0))
    draw = Renderer(SIZE) if renderer == "cpu" else Centerlines(SIZE)

    def dataset():
        return InkDataset(source, make_augmenter(d), draw, seed=4, stream=0, mask_ratio=0.25, patch_size=8, fixed=False)

    a, b = dataset(), dataset()
    for index in range(12):
        x, y, z = a[0, index], b[0, index], a[1, index]
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        key = "points" if renderer == "device" else "ink"
        assert not torch.equal(x[key], z[key])


def turns(stroke):
    """Degrees between consecutive pieces of a polyline."""
    d = np.diff(stroke.astype(np.float64), axis=0)
    d = d[np.linalg.norm(d, axis=1) > 1e-6]
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    return np.degrees(np.abs(np.diff(heading)))


def test_angular_glyphs_bend_at_corners_only():
    """data.angular straightens a glyph's curves into a few pieces (a printed font's hook); the
    targets follow, as they are drawn from the same centerline: no keypoint at its corners."""
    t = np.linspace(0, np.pi, 40)
    arc = np.stack([0.5 + 0.35 * np.cos(t), 0.5 + 0.35 * np.sin(t)], 1).astype(np.float32)
    drawn = {}
    for angular in (0.0, 1.0):
        strokes, pen = make_augmenter(DataConfig(angular=angular, wobble=0.0))([arc], np.random.default_rng(0))
        drawn[angular] = turns(strokes[0]), render(strokes, pen)["keypoints"][0]
    (smooth, smooth_keys), (sharp, sharp_keys) = drawn[0.0], drawn[1.0]
    assert smooth.max() < 10 and (smooth > 1).sum() > 20  # a smooth curve (5 deg at most: 38 bends)
    assert (sharp > 1).sum() <= 8 and sharp.max() > 15  # 180 degrees in a few corners (27 deg: 7)
    assert (sharp_keys > 0.5).sum() == (smooth_keys > 0.5).sum()  # its two ends only


def test_the_pen_options_leave_every_glyph_shape_as_it_was():
    """The style (all but the width) is drawn after the geometry: an ablation of an option
    compares the same glyphs, drawn with the same pen widths."""
    source = KanjiVGStrokes(split="val", val_fraction=0.05, test_fraction=0.05, cache_dir=None)
    style = {k: v for k, v in WIDE_INK.items() if not k.startswith("pen_width")}
    plain, styled = make_augmenter(DataConfig()), make_augmenter(DataConfig(**style))
    for i in range(8):
        glyph = source.glyph(i)
        a, pa = plain(glyph, np.random.default_rng([0, i]))
        b, pb = styled(glyph, np.random.default_rng([0, i]))
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert np.array_equal(pa.half_width, pb.half_width)


# --- the device renderer draws the same ---


@pytest.mark.parametrize(
    "option",
    [
        dict(pen_width_min=5.0, pen_width_max=7.0),
        dict(pen_pressure=1.0, pen_width_max=6.0),
        dict(pen_nib=1.0, pen_width_max=6.0),
        dict(pen_flat_caps=1.0, pen_width_max=6.0),
        dict(hairlines=1.0, hairline_gap=1.0),
        dict(angular=1.0, pen_width_max=6.0),
        dict(cursive_joins=1.0, hairline_gap=1.0, pen_width_min=5.0, pen_width_max=6.0),
        dict(WIDE_INK, outline_ink=0.0),
    ],
    ids=["wide", "pressure", "nib", "flat", "hairlines", "angular", "joins", "all"],
)
def test_the_device_renderer_agrees(option):
    """The default pen's tolerances (tests/test_device_render.py), as the README states them:
    skeleton and keypoints identical, tangent within 1e-4; ink mean |difference| <= 1e-4 and
    <= 0.1 % of pixels off by more than 1e-3 (the nearest centerline point the two searches find
    differs at a few pixels between close strokes: <= 0.2 % with 5-7 px pens, whose ink reaches
    farther); width and offset within 0.1 px at >= 99.9 % of pixels. Swept ink is the same sum
    on both: within 1e-4 everywhere."""
    d = DataConfig(img_size=SIZE, **option)
    source = KanjiVGStrokes(split="train", val_fraction=0.05, test_fraction=0.05, cache_dir=None)
    common = dict(seed=3, stream=0, mask_ratio=0.0, patch_size=8, fixed=False)
    cpu_set = InkDataset(source, make_augmenter(d), Renderer(SIZE), **common)
    device_set = InkDataset(source, make_augmenter(d), Centerlines(SIZE), **common)
    n = 24
    cpu = {k: torch.stack([cpu_set[0, i][k] for i in range(n)]) for k in ("ink", "width", "offset", *TARGETS)}
    device = make_device_renderer(d)(collate_centerlines([device_set[0, i] for i in range(n)]))
    for key in ("skeleton", "keypoints"):
        assert torch.equal(cpu[key], device[key]), key
    assert (cpu["tangent"] - device["tangent"]).abs().max() <= 1e-4
    ink = (cpu["ink"] - device["ink"]).abs()
    share = 2e-3 if d.pen_width_min >= 5 else 1e-3
    assert ink.mean() <= 1e-4 and (ink > 1e-3).float().mean() <= share, (ink.mean(), (ink > 1e-3).float().mean())
    if max(d.pen_pressure, d.pen_nib, d.pen_flat_caps) == 1.0:  # every glyph swept
        assert ink.max() <= 1e-4
    for key in ("width", "offset"):
        far = ((cpu[key] - device[key]).abs() > 0.1).float().mean()
        assert far <= 1e-3, (key, far)


def test_the_swept_device_renderer_never_reads_the_device():
    d = DataConfig(**dict(WIDE_INK, outline_ink=0.0))
    source = SyntheticStrokes(6)
    dataset = InkDataset(
        source, make_augmenter(d), Centerlines(SIZE), seed=0, stream=0, mask_ratio=0.0, patch_size=8, fixed=False
    )
    batch = collate_centerlines([dataset[0, i] for i in range(4)])
    out = make_device_renderer(d)({k: v.to("meta") for k, v in batch.items()})
    assert out["ink"].shape == (4, 1, SIZE, SIZE)


# --- the config ---


def compose_config(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["data.pen_width_max=17"], "need 0 < pen_width_min <= pen_width_max <= data.img_size / 4 = 16"),
        (["data.pen_width_sampling=normal"], "data.pen_width_sampling='normal' is out of range: one of uniform"),
        (["data.pen_pressure=1.5"], "data.pen_pressure=1.5 is out of range: a share, in [0, 1]"),
        (["data.hairlines=-0.1"], "data.hairlines=-0.1 is out of range: a share, in [0, 1]"),
        (["data.angular=2"], "data.angular=2.0 is out of range: a share, in [0, 1]"),
        (["data.cursive_joins=1.5"], "data.cursive_joins=1.5 is out of range: a share, in [0, 1]"),
        (["data.pen_taper=0"], "data.pen_taper=0.0 is out of range: a fraction of the widest width, in (0, 1]"),
        (["data.hairline_width_max=3"], "hairline_width_max <= 2"),
        (["data.hairline_intensity_max=1.5"], "hairline_intensity_max <= 1 (ink coverage at a hairline's centre)"),
    ],
)
def test_bad_pen_options_are_named(overrides, expected):
    with pytest.raises(ConfigError) as error:
        to_config(compose_config(overrides))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_wide_ink_run_trains(workdir):
    """The documented preset, with the tiny model on synthetic strokes: it trains and its
    losses are finite."""
    proc = run_cli(tiny("experiment=wide_ink"), cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = next(workdir.rglob("config.yaml")).read_text()
    assert "outline_ink: 0.2" in config and "pen_width_max: 7.0" in config
    assert "nan" not in proc.stderr.lower()

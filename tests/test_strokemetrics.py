"""Stroke recovery: the stated rule on hand-made tracings."""

from __future__ import annotations

import numpy as np
import pytest

from inktrace_train.evaluation.strokemetrics import ink_counts, pooled_scores, stroke_scores

TRUTH = [
    np.array([[5.0, 10.0], [55.0, 10.0]]),
    np.array([[30.0, 5.0], [30.0, 58.0]]),
    np.array([[8.0, 50.0], [20.0, 40.0], [40.0, 45.0]]),
]


def score(traced):
    return pooled_scores([stroke_scores(traced, TRUTH)])


def test_a_perfect_tracing_scores_one():
    s = score([t.copy() for t in TRUTH])
    assert s["stroke_f1"] == 1.0 and s["stroke_count_error"] == 0 and s["chamfer_px"] == pytest.approx(0, abs=1e-9)


def test_half_a_pixel_off_still_recovers():
    s = score([t + 0.5 for t in TRUTH])
    assert s["stroke_f1"] == 1.0 and 0.4 < s["chamfer_px"] < 0.8


def test_one_stroke_split_in_two_is_the_stated_penalty():
    first, second = TRUTH[0].copy(), TRUTH[0].copy()
    first[1, 0] = second[0, 0] = 30.0  # two halves of the first stroke
    s = score([first, second, TRUTH[1], TRUTH[2]])
    n = len(TRUTH)
    assert s["stroke_recall"] == pytest.approx((n - 1) / n)
    assert s["stroke_precision"] == pytest.approx((n - 1) / (n + 1))
    assert s["stroke_count_error"] == 1 and s["chamfer_px"] == pytest.approx(0, abs=1e-9)


def test_two_strokes_merged_into_one_polyline_recover_neither():
    merged = np.concatenate([TRUTH[0], TRUTH[1]])  # runs from one stroke into the other
    s = score([merged, TRUTH[2]])
    assert s["stroke_recall"] == pytest.approx(1 / 3) and s["stroke_precision"] == pytest.approx(1 / 2)


def test_a_stroke_traced_twice_counts_once():
    s = score([t.copy() for t in TRUTH] + [TRUTH[0].copy()])
    assert s["stroke_recall"] == 1.0 and s["stroke_precision"] == pytest.approx(3 / 4)


def test_nothing_traced():
    s = score([])
    assert s["stroke_f1"] == 0.0 and s["stroke_count_error"] == 3 and np.isnan(s["chamfer_px"])


def test_ink_recall_sees_a_missing_radical_that_stroke_scores_barely_see():
    """A 12-stroke glyph traced without its 2-stroke left radical (a tall stroke and a hook, the
    way the 阝 of 邛 vanished): stroke precision stays perfect and F1 high, ink recall drops and
    the glyph counts as lossy."""
    from inktrace_train.data import Renderer

    radical = [np.array([[6.0, 8.0], [6.0, 58.0]]), np.array([[6.0, 8.0], [16.0, 14.0], [8.0, 30.0], [16.0, 46.0]])]
    rest = [np.array([[22.0, 8.0 + 4.5 * k], [58.0, 8.0 + 4.5 * k]]) for k in range(10)]
    truth = radical + rest
    image = Renderer(64)(truth, np.full(len(truth), 1.0))["ink"][0]
    whole = pooled_scores([{**stroke_scores(truth, truth), **ink_counts(image, truth)}])
    assert whole["ink_recall"] >= 0.99 and whole["lossy_glyphs"] == 0.0
    missing = pooled_scores([{**stroke_scores(rest, truth), **ink_counts(image, rest)}])
    assert missing["stroke_precision"] == 1.0 and missing["stroke_f1"] > 0.9  # what stroke F1 sees
    assert missing["ink_recall"] < 0.85 and missing["lossy_glyphs"] == 1.0  # what ink recall sees


def test_ink_recall_reads_wide_ink_under_its_own_pen():
    """A 7 px pen: two pairs of bars 6 px apart merge into bands and two strokes meet at an acute
    angle, so the classical skeleton runs between the true centerlines. The truth itself leaves a
    third of it farther than 2 px, but covers it all when drawn with the ink's own width; a lost
    radical is still lost."""
    from inktrace_train.data import Renderer

    radical = [np.array([[10.0, 8.0], [10.0, 56.0]])]
    rest = [np.array([[24.0, y], [56.0, y]]) for y in (12.0, 18.0, 46.0, 52.0)]
    rest += [np.array([[40.0, 24.0], [28.0, 40.0]]), np.array([[40.0, 24.0], [52.0, 40.0]])]
    truth = radical + rest
    image = Renderer(64)(truth, np.full(len(truth), 3.5))["ink"][0]
    whole = pooled_scores([{**stroke_scores(truth, truth), **ink_counts(image, truth)}])
    assert whole["ink_recall"] >= 0.99 and whole["lossy_glyphs"] == 0.0
    assert whole["ink_recall_2px"] < 0.8  # the fixed rule calls the exact truth lossy
    missing = pooled_scores([{**stroke_scores(rest, truth), **ink_counts(image, rest)}])
    assert missing["ink_recall"] < 0.8 and missing["lossy_glyphs"] == 1.0


def test_ink_recall_under_the_pen_never_reads_less_than_within_2px():
    """The pen only widens the 2 px rule. A traced line exactly 2 px beside a thin stroke's
    skeleton: every skeleton pixel is within 2 px of the line, though not of its samples every
    0.5 px (a first version measured to those and read 0 here)."""
    from inktrace_train.data import Renderer

    image = Renderer(64)([np.array([[8.0, 32.0], [56.0, 32.0]])], np.array([0.5]))["ink"][0]
    rows = np.nonzero(image >= 0.5)[0]
    y = rows.min() + 0.5 + 2.0  # 2 px below the pixel centres of the thinned one-pixel line
    counts = ink_counts(image, [np.array([[8.2, y], [55.9, y]])])
    assert counts["ink_total"] > 40 and counts["ink_traced"] == counts["ink_traced_2px"] == counts["ink_total"]

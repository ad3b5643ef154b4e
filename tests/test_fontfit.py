"""Known strokes fitted onto a font's ink (evaluation/fontfit.py): the fit follows a glyph drawn by
another hand (scaled, shifted, a part moved), keeps every stroke in order on the ink, and refuses
ink the strokes do not explain."""

from __future__ import annotations

import cv2
import numpy as np

from inktrace_train.evaluation import fontfit
from inktrace_train.evaluation.fontfit import fitted_strokes
from inktrace_train.evaluation.strokemetrics import resample

SIZE = 64
# 土-like known strokes in unit coordinates: a short top bar, a vertical, a long bottom bar.
KNOWN = [
    np.array([[0.25, 0.35], [0.75, 0.35]]),
    np.array([[0.5, 0.1], [0.5, 0.85]]),
    np.array([[0.05, 0.85], [0.95, 0.85]]),
]


def draw(lines: list[np.ndarray], width: int = 3) -> np.ndarray:
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    for line in lines:
        cv2.polylines(canvas, [np.round(line - 0.5).astype(np.int32).reshape(-1, 1, 2)], False, 255, width)
    return canvas.astype(np.float32) / 255.0


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance of a's points to polyline b (densely resampled)."""
    dense = resample(b, 0.1)
    return float(np.linalg.norm(a[:, None] - dense[None], axis=2).min(1).mean())


def another_hand() -> list[np.ndarray]:
    """KNOWN as a font draws it: squashed, its top bar lower and off to the left, its vertical off centre."""
    top = np.array([[12.0, 32.0], [40.0, 32.0]])
    vertical = np.array([[24.0, 10.0], [24.0, 52.0]])
    bottom = np.array([[8.0, 52.0], [54.0, 52.0]])
    return [top, vertical, bottom]


def test_the_fit_bends_the_known_strokes_onto_another_hands_ink():
    drawn = another_hand()
    fitted = fitted_strokes(draw(drawn), KNOWN)
    assert fitted is not None and len(fitted) == 3
    for stroke, truth in zip(fitted, drawn, strict=True):  # each known stroke lands on its own line
        assert mean_distance(stroke, truth) < 0.8
        assert np.linalg.norm(stroke[-1] - stroke[0]) > 0.7 * np.linalg.norm(truth[-1] - truth[0])


def test_a_one_axis_character_fits():
    fitted = fitted_strokes(draw([np.array([[8.0, 30.0], [56.0, 30.0]])]), [np.array([[0.0, 0.5], [1.0, 0.5]])])
    assert fitted is not None and mean_distance(fitted[0], np.array([[8.0, 30.0], [56.0, 30.0]])) < 0.8


def test_ink_the_known_strokes_do_not_explain_is_refused():
    extra = np.array([[40.0, 12.0], [56.0, 24.0]])  # a stroke the character does not have
    assert fitted_strokes(draw([*another_hand(), extra]), KNOWN) is None


def test_strokes_that_do_not_match_the_ink_are_refused():
    box = [np.array([[10.0, 10.0], [54.0, 10.0], [54.0, 54.0], [10.0, 54.0], [10.0, 10.0]])]  # a ring: no bar, no cross
    assert fitted_strokes(draw(box), KNOWN) is None
    assert fitted_strokes(np.zeros((SIZE, SIZE), np.float32), KNOWN) is None  # no ink at all


def test_a_fitted_stroke_that_overshoots_the_ink_is_trimmed_to_it(monkeypatch):
    # A fit whose vertical runs 8 px past the font's foot (as a known 十 on a font's T):
    # fitted_strokes cuts the end off the ink and keeps the rest.
    bar, vertical = np.array([[8.0, 24.0], [56.0, 24.0]]), np.array([[32.0, 8.0], [32.0, 40.0]])
    long = resample(np.array([[32.0, 8.0], [32.0, 48.0]]), 0.6)
    monkeypatch.setattr(fontfit, "fit", lambda skeleton, strokes: [resample(bar, 0.6), long])
    canvas = draw([bar, vertical])
    fitted = fitted_strokes(canvas, [np.array([[0.0, 0.4], [1.0, 0.4]]), np.array([[0.5, 0.0], [0.5, 1.0]])])
    assert fitted is not None and len(fitted) == 2
    assert 40.0 <= fitted[1][:, 1].max() <= 43.0  # cut where the ink ends (rows to 41), not at 48
    assert fitted[1][:, 1].min() == long[:, 1].min()  # the end on the ink is kept

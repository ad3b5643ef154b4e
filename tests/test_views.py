"""Four views of each glyph (evaluation/views.py): each view's maps are moved back onto the canvas
before they are averaged, so a model that is shift-equivariant reads the same in four views as in
one, and one whose stride makes it read a glyph differently one pixel over reads it the same."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from helpers import cli
from inktrace_train.evaluation.views import SHIFTS, ShiftViews, shifted

SIZE = 32


def glyph() -> np.ndarray:
    """(1, 1, S, S) ink: a cross with a diagonal, well inside the canvas."""
    ink = np.zeros((1, 1, SIZE, SIZE), np.float32)
    ink[..., 15, 6:26] = 1
    ink[..., 5:27, 12] = 1
    ink[..., np.arange(8, 24), np.arange(8, 24)] = 1
    return ink


def blurred(ink: np.ndarray) -> dict:
    """A shift-equivariant stand-in model: 3 x 3 box means, a tangent whose two channels differ."""
    padded = np.pad(ink, ((0, 0), (0, 0), (1, 1), (1, 1)))
    box = sum(padded[..., dy : dy + SIZE, dx : dx + SIZE] for dy in range(3) for dx in range(3)) / 9
    return {"skeleton": box, "tangent": np.concatenate([box, -0.5 * box], 1)}


def strided(ink: np.ndarray) -> dict:
    """A stand-in with a stride-2 stage's artefact: 2 x 2 block maxima, widened back."""
    b, c, h, w = ink.shape
    blocks = ink.reshape(b, c, h // 2, 2, w // 2, 2).max((3, 5))
    return {"skeleton": blocks.repeat(2, 2).repeat(2, 3)}


def ink_as_skeleton(ink: np.ndarray) -> dict:
    """A stand-in model for the commands: the ink is the skeleton, no tangent information."""
    skeleton = (ink >= 0.5).astype(np.float32)
    return {"skeleton": skeleton, "ink": skeleton, "tangent": np.zeros((len(ink), 2, *ink.shape[2:]), np.float32)}


def inner(a: np.ndarray) -> np.ndarray:
    return a[..., 2:-2, 2:-2]  # away from the border, where shifting fills zeros


def test_shifted_moves_without_wrapping():
    a = np.arange(16.0).reshape(4, 4)
    assert (shifted(a, 1, 0)[:, 1:] == a[:, :-1]).all() and (shifted(a, 1, 0)[:, 0] == 0).all()
    assert (shifted(a, 0, -1)[:-1] == a[1:]).all() and (shifted(a, 0, -1)[-1] == 0).all()
    assert (shifted(shifted(a, 1, 1), -1, -1)[:-1, :-1] == a[:-1, :-1]).all()


def test_a_shift_equivariant_model_reads_the_same_in_four_views():
    one, four = blurred(glyph()), ShiftViews(blurred, 4)(glyph())
    for name in one:  # every map, the tangent's channels too, lands back where the canvas has it
        np.testing.assert_allclose(inner(four[name]), inner(one[name]), atol=1e-6)


def test_four_views_read_a_glyph_one_pixel_over_as_the_same_glyph():
    ink, moved = glyph(), shifted(glyph(), 1, 0)
    single = ShiftViews(strided, 1)
    assert not np.allclose(inner(shifted(single(ink)["skeleton"], 1, 0)), inner(single(moved)["skeleton"]))
    four = ShiftViews(strided, 4)
    np.testing.assert_allclose(inner(shifted(four(ink)["skeleton"], 1, 0)), inner(four(moved)["skeleton"]), atol=1e-6)


def test_the_edges_are_the_mean_of_the_views_that_saw_them():
    ink = np.random.default_rng(0).random((2, 1, SIZE, SIZE), dtype=np.float32)
    four = ShiftViews(lambda x: {"skeleton": x}, 4)(ink)["skeleton"]  # a model that returns its input
    np.testing.assert_allclose(four, ink, atol=1e-6)  # the last row and column too, not diluted by fill


def test_each_view_is_one_model_call_of_the_batch_and_one_view_is_the_model_itself():
    calls = []

    def model(ink):
        calls.append(len(ink))
        return blurred(ink)

    batch = np.concatenate([glyph(), shifted(glyph(), 2, 3)])
    out = ShiftViews(model, 4)(batch)
    assert calls == [2] * len(SHIFTS) and out["skeleton"].shape == (2, 1, SIZE, SIZE)
    np.testing.assert_array_equal(ShiftViews(model, 1)(batch)["skeleton"], blurred(batch)["skeleton"])
    for bad in (2, "4", 4.0, True):
        with pytest.raises(ValueError, match=r"views=.*: must be one of 1, 4"):
            ShiftViews(model, bad)


@pytest.mark.parametrize("views", [1, 4])
def test_predict_reads_with_the_views_asked_for(tmp_path, monkeypatch, views):
    from inktrace_train.cli import predict
    from inktrace_train.evaluation.tracer import Tracer

    asked = []

    def from_checkpoint(path, device="cpu", **kwargs):
        asked.append(kwargs["views"])
        return Tracer(ink_as_skeleton, size=64, **kwargs)

    monkeypatch.setattr(Tracer, "from_checkpoint", staticmethod(from_checkpoint))
    image = np.full((80, 80), 255, np.uint8)
    image[38:42, 10:70] = 0
    cv2.imwrite(str(tmp_path / "bar.png"), image)
    argv = ["ckpt.pth", str(tmp_path / "bar.png"), "--out", str(tmp_path / "out")]
    predict.main(argv + ([] if views == 4 else ["--views", str(views)]))  # 4: the default
    assert asked == [views]


def test_evaluate_reads_with_the_views_asked_for(tmp_path, monkeypatch):
    from inktrace_train.cli import evaluate
    from inktrace_train.evaluation.tracer import Tracer

    asked = []

    def from_checkpoint(path, device="cpu", **kwargs):
        asked.append(kwargs["views"])
        return Tracer(ink_as_skeleton, size=64, **kwargs)

    monkeypatch.setattr(Tracer, "from_checkpoint", staticmethod(from_checkpoint))
    evaluate.main(
        ["ckpt.pth", "--set", "clean", "--n", "2", "--workers", "0", "--views", "1", "--json", str(tmp_path / "s.json")]
    )
    assert asked == [1]
    rows = json.loads((tmp_path / "s.json").read_text())
    assert rows["model@clean"]["views"] == 1  # the file says how the model read its glyphs
    assert all("views" not in v for k, v in rows.items() if not k.startswith("model@"))  # thinning has no views


def test_predict_names_the_views_it_takes(tmp_path):
    proc = cli(["ckpt.pth", "x.png", "--out", "o", "--views", "3"], cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode == 2 and "--views: invalid choice: 3 (choose from 1, 4)" in proc.stderr

"""``python -m inktrace_train.evaluate``: every metric, in range, for the model and the baselines."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import cli, run_cli
from test_predict import checkpoint  # noqa: F401  (the tiny full-heads checkpoint fixture)

RANGES = {
    "skeleton_f1_0px": (0, 1),
    "skeleton_f1_1px": (0, 1),
    "endpoint_f1": (0, 1),
    "junction_f1": (0, 1),
    "stroke_f1": (0, 1),
    "stroke_precision": (0, 1),
    "stroke_recall": (0, 1),
    "stroke_count_error": (0, 40),
}


HANZI_SAMPLE = Path(__file__).parent / "data" / "hanzi"
MODULE = "inktrace_train.evaluate"


@pytest.mark.slow
def test_evaluate_scores_the_model_and_the_classical_baselines_on_every_set(checkpoint, tmp_path):  # noqa: F811
    args = [str(checkpoint), "--n", "12", "--json", "scores.json", "--hanzi-dir", str(HANZI_SAMPLE)]
    proc = run_cli(args, cwd=tmp_path, module="inktrace_train.evaluate")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "scores.json").read_text())
    classical = ["skeletonize", "thin", "thin, Otsu", "thin, median + Otsu"]
    methods = ["model"] + (classical if importlib.util.find_spec("skimage") else [])
    assert set(rows) == {f"{m}@{s}" for m in methods for s in ("clean", "scan", "brush")}
    for name, values in rows.items():
        for key, (lo, hi) in RANGES.items():
            assert lo <= values[key] <= hi, (name, key, values[key])
    model = rows["model@clean"]
    assert 0 <= model["tangent_error_deg"] <= 90 and 0 <= model["width_mae_px"] < 10
    if "thin@clean" in rows:  # the classical skeleton of clean renders is close to the truth
        assert rows["thin@clean"]["skeleton_f1_1px"] > 0.8 and math.isfinite(rows["thin@clean"]["chamfer_px"])
    assert "| model | clean |" in proc.stdout and "| model | brush |" in proc.stdout
    assert "(no fonts rows: the fonts set needs --fonts-dir DIR" in proc.stdout  # `all` skips it, saying so
    if "thin@scan" in rows:  # scan-like damage costs the thresholded skeleton dearly
        assert rows["thin@scan"]["skeleton_f1_0px"] < rows["thin@clean"]["skeleton_f1_0px"] - 0.05


def test_your_own_stroke_files_are_a_set_of_their_own(checkpoint, tmp_path):  # noqa: F811
    """A model of data=strokes is scored on the test split of its own files (the keys training held
    out), beside the classical rows; a split without glyphs says why in one line."""
    rng = np.random.default_rng(0)
    lines = []
    for k in range(80):  # 80 glyphs of two random strokes each: about 4 test-split keys at 0.05
        strokes = [
            [rng.uniform(0, 100, 5).round(1).tolist(), rng.uniform(0, 100, 5).round(1).tolist()] for _ in range(2)
        ]
        lines.append(json.dumps({"key": f"g{k:03d}", "strokes": strokes}))
    (tmp_path / "mine.ndjson").write_text("\n".join(lines) + "\n")
    args = [str(checkpoint), "--set", "strokes", "--data-path", "mine.ndjson", "--json", "s.json", "--workers", "0"]
    proc = cli(args, cwd=tmp_path, module=MODULE)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "s.json").read_text())
    assert {k.split("@")[1] for k in rows} == {"strokes"} and "model@strokes" in rows
    assert re.search(r"strokes: [1-9]\d* test-split glyphs", proc.stdout)
    (tmp_path / "few.ndjson").write_text("\n".join(lines[:3]) + "\n")
    few = cli([str(checkpoint), "--set", "strokes", "--data-path", "few.ndjson"], cwd=tmp_path, module=MODULE)
    assert few.returncode == 1 and "no test-split glyph at the checkpoint's data.val_fraction" in few.stderr
    bare = cli([str(checkpoint), "--set", "strokes"], cwd=tmp_path, module=MODULE)
    assert bare.returncode == 1 and "the strokes set needs --data-path PATH" in bare.stderr
    from inktrace_train.checkpoint.store import load_checkpoint, sealed_bytes

    moved = load_checkpoint(checkpoint)  # a run of data=strokes whose files are not on this machine
    moved.config["data"]["path"] = "gone/ink"
    (tmp_path / "moved.pth").write_bytes(sealed_bytes(moved.to_dict()))
    gone = cli(["moved.pth", "--set", "strokes"], cwd=tmp_path, module=MODULE)
    assert gone.returncode == 1 and "the checkpoint's data.path=gone/ink is not here: give --data-path" in gone.stderr


@pytest.mark.slow
def test_one_set_and_the_brush_set_without_data(checkpoint, tmp_path):  # noqa: F811
    proc = run_cli(
        [str(checkpoint), "--n", "4", "--set", "scan", "--json", "s.json"],
        cwd=tmp_path,
        module="inktrace_train.evaluate",
    )
    assert proc.returncode == 0, proc.stderr
    assert {k.split("@")[1] for k in json.loads((tmp_path / "s.json").read_text())} == {"scan"}
    proc = run_cli([str(checkpoint), "--n", "4", "--set", "brush"], cwd=tmp_path, module="inktrace_train.evaluate")
    assert proc.returncode == 1 and "--hanzi-dir" in proc.stderr and "npm pack hanzi-writer-data@2.0.1" in proc.stderr


@pytest.mark.slow
def test_worker_processes_give_the_scores_of_one_process(checkpoint, tmp_path):  # noqa: F811
    """The classical rows computed in two worker processes beside the model's, or all here: the
    same JSON, in the same order, on every set and the fonts set."""
    pytest.importorskip("skimage")
    pytest.importorskip("fontTools")
    fonts = Path(__file__).parent / "data" / "fonts"
    args = [str(checkpoint), "--n", "3", "--hanzi-dir", str(HANZI_SAMPLE), "--fonts-dir", str(fonts)]
    for workers in ("0", "2"):
        proc = run_cli([*args, "--workers", workers, "--json", f"w{workers}.json"], cwd=tmp_path, module=MODULE)
        assert proc.returncode == 0, proc.stderr
    one, two = ((tmp_path / f"w{w}.json").read_text() for w in ("0", "2"))
    assert one == two
    rows = json.loads(one)
    assert "thin, median + Otsu@brush" in rows and "thin@fonts" in rows and "model@fonts/klee-one" in rows
    bad = cli([str(checkpoint), "--workers", "-1"], cwd=tmp_path, module=MODULE)
    assert bad.returncode == 2 and "--workers=-1" in bad.stderr


def test_a_missing_checkpoint_is_one_line(tmp_path):
    proc = cli(["nope.pth"], cwd=tmp_path, module="inktrace_train.evaluate")
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "inktrace_train.evaluate: error: no such file or directory: nope.pth"
    )


def test_the_test_sets_are_the_same_images_whatever_ink_a_checkpoint_trained_on():
    """A run trained on wide, outlined, hairlined ink is scored on the very images a default
    run is: the test sets' pens are pinned (TEST_PEN), not taken from the checkpoint."""
    import numpy as np

    from inktrace_train.cli.evaluate import data_config, test_glyphs

    wide = {
        "data": {
            "pen_width_min": 0.8,
            "pen_width_max": 7.0,
            "pen_pressure": 0.4,
            "outline_ink": 0.2,
            "hairlines": 0.3,
            "cursive_joins": 0.3,
            "pen_nib": 0.2,
            "pen_flat_caps": 0.3,
            "pen_width_sampling": "log_uniform",
        }
    }
    plain, trained_wide = data_config({}), data_config(wide)
    assert plain == trained_wide
    a, b = (test_glyphs(d, "clean", 3) for d in (plain, trained_wide))
    assert all(np.array_equal(x[2], y[2]) for x, y in zip(a, b, strict=True))

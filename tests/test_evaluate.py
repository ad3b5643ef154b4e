"""``python -m inktrace_train.evaluate``: every metric, in range, for the model and the baselines."""

from __future__ import annotations

import importlib.util
import json
import math

from conftest import run_cli
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


def test_evaluate_scores_the_model_and_the_classical_baselines(checkpoint, tmp_path):  # noqa: F811
    proc = run_cli(
        [str(checkpoint), "--n", "12", "--json", "scores.json"], cwd=tmp_path, module="inktrace_train.evaluate"
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "scores.json").read_text())
    expected = {"model@clean"}
    if importlib.util.find_spec("skimage"):
        expected |= {"skeletonize@clean", "thin@clean"}
    assert set(rows) == expected
    for name, values in rows.items():
        for key, (lo, hi) in RANGES.items():
            assert lo <= values[key] <= hi, (name, key, values[key])
    model = rows["model@clean"]
    assert 0 <= model["tangent_error_deg"] <= 90 and 0 <= model["width_mae_px"] < 10
    if "thin@clean" in rows:  # the classical skeleton of clean renders is close to the truth
        assert rows["thin@clean"]["skeleton_f1_1px"] > 0.8 and math.isfinite(rows["thin@clean"]["chamfer_px"])
    assert "| model | clean |" in proc.stdout


def test_a_missing_checkpoint_is_one_line(tmp_path):
    proc = run_cli(["nope.pth"], cwd=tmp_path, module="inktrace_train.evaluate")
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "inktrace_train.evaluate: error: no such file or directory: nope.pth"
    )

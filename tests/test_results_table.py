"""scripts/results_table.py, which prints the README's tables from ``evaluate --json`` files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO

SCRIPT = REPO / "scripts" / "results_table.py"
FONT = {"glyphs": 10.0, "count_error": 0.5, "count_exact": 0.6, "count_within_1": 0.9, "traced_true_ratio": 1.0}
FONT |= {"ink_recall": 0.99, "ink_recall_2px": 0.98}
HIGHER_IS_BETTER = ("skeleton_f1_0px", "skeleton_f1_1px", "endpoint_f1", "junction_f1", "ink_recall", "ink_recall_2px")
SET = dict.fromkeys(HIGHER_IS_BETTER, 0.5)


def table(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def scores_file(tmp_path):
    scores = {
        "model@clean": {**SET, "stroke_f1": 0.8, "stroke_count_error": 0.5},
        "thin@clean": {**SET, "stroke_f1": 0.6, "stroke_count_error": 1.0},
        "skeletonize@clean": {**SET, "stroke_f1": 0.7, "stroke_count_error": 1.2},
        "model@fonts/sans": FONT,
        "thin@fonts/sans": {**FONT, "count_error": 0.4, "count_exact": 0.3},
        "model@fonts": FONT,
        "thin@fonts": {**FONT, "count_error": 0.9, "count_exact": 0.3},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(scores))
    return path


def test_the_sets_table_gives_the_models_margin_over_the_best_classical_value(tmp_path):
    sets = table(f"shipped={scores_file(tmp_path)}")
    assert sets.returncode == 0, sets.stderr
    assert "| clean | shipped − best classical | " in sets.stdout and "+0.100" in sets.stdout  # 0.8 against 0.7


def test_the_fonts_table_says_where_the_model_beats_the_best_classical_row(tmp_path):
    pytest.importorskip("fontTools", reason="the fonts table reads the fonts set's columns: the eval extra")
    fonts = table("--fonts", str(scores_file(tmp_path)))
    assert fonts.returncode == 0, fonts.stderr
    assert "| sans | 0.500 | 0.600 |" in fonts.stdout and fonts.stdout.count("**no**") == 1  # thin counts sans better
    assert "| **all fonts** |" in fonts.stdout and "| yes |" in fonts.stdout


def test_bad_arguments_get_one_line_not_a_traceback(tmp_path):
    for args, message in (
        (["results.json"], "give NAME=SCORES.json for each file (got 'results.json')"),
        (["--fonts", str(tmp_path / "missing.json")], "missing.json: not a readable evaluate --json file"),
        ([], "give NAME=SCORES.json or --fonts"),
    ):
        proc = table(*args)
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "NAME=SCORES.json" in table("--help").stdout

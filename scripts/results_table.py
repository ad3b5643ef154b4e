"""Print the results tables of docs/evaluation.md from ``python -m inktrace_train.evaluate --json`` files.

Run: ``python scripts/results_table.py NAME=SCORES.json [NAME=SCORES.json ...]``. The model rows
of each file are named NAME; the classical rows are taken from the first file (every file scores
them on the same images). Per set, the best classical value of each column is marked, and a last
line per set gives the model's margin over it.

``python scripts/results_table.py --fonts SCORES.json`` prints the fonts set's summary instead:
per font and overall, the model's counts and ink recall beside the best classical row's count
error and exact-count share (each the best of any classical method), and whether the model beats
both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SETS = ("clean", "scan", "brush")
COLUMNS = (
    ("skeleton_f1_0px", "skel F1 @0"),
    ("skeleton_f1_1px", "@1 px"),
    ("endpoint_f1", "end F1"),
    ("junction_f1", "junc F1"),
    ("stroke_f1", "stroke F1"),
    ("ink_recall", "ink recall"),
    ("ink_recall_2px", "ink recall 2 px"),
    ("lossy_glyphs", "lossy glyphs"),
    ("stroke_count_error", "count err"),
    ("chamfer_px", "Chamfer px"),
    ("tangent_error_deg", "tangent °"),
    ("width_mae_px", "width MAE px"),
)
HIGHER_IS_BETTER = {
    "skeleton_f1_0px",
    "skeleton_f1_1px",
    "endpoint_f1",
    "junction_f1",
    "stroke_f1",
    "ink_recall",
    "ink_recall_2px",
}


def cell(values: dict, key: str) -> str:
    return f"{values[key]:.3f}" if key in values else "–"


def fonts_table(scores: dict) -> None:
    """Per font (``model@fonts/<font>``) and overall (``model@fonts``): the model against the best
    classical count error and exact share."""
    from inktrace_train.evaluation import fontset  # the eval extra: the sets' table works without it

    font_columns = tuple(c for c in fontset.COLUMNS if c[0] != "glyphs")  # the fonts table's scores
    places = [k.split("@", 1)[1] for k in scores if k.startswith("model@fonts/")] + ["fonts"]
    print(
        "| font | "
        + " | ".join(f"model {label}" for _, label in font_columns)
        + " | best classical count err | best classical exact | model better on both |"
    )
    print("|---|" + "---|" * (len(font_columns) + 3))
    for where in places:
        model = scores[f"model@{where}"]
        classical = [v for k, v in scores.items() if k.endswith(f"@{where}") and not k.startswith("model@")]
        error = min(v["count_error"] for v in classical)
        exact = max(v["count_exact"] for v in classical)
        better = model["count_error"] < error and model["count_exact"] > exact
        font = where.split("/", 1)[1] if "/" in where else "**all fonts**"
        cells = [cell(model, k) for k, _ in font_columns] + [
            f"{error:.3f}",
            f"{exact:.3f}",
            "yes" if better else "**no**",
        ]
        print(f"| {font} | " + " | ".join(cells) + " |")


def read_scores(path: str) -> dict:
    """One ``evaluate --json`` file; a clear exit for a missing or unreadable one."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"results_table.py: {path}: not a readable evaluate --json file ({e})") from None


def main(argv: list) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", metavar="NAME=SCORES.json", help="the model rows' name and their file")
    p.add_argument("--fonts", metavar="SCORES.json", help="print the fonts set's summary of this file instead")
    args = p.parse_args(argv)
    if args.fonts:
        fonts_table(read_scores(args.fonts))
        return
    bad = [arg for arg in args.files if "=" not in arg]
    if bad or not args.files:
        p.error(f"give NAME=SCORES.json for each file (got {bad[0]!r})" if bad else "give NAME=SCORES.json or --fonts")
    files = [arg.split("=", 1) for arg in args.files]
    scores = {name: read_scores(path) for name, path in files}
    first = scores[files[0][0]]
    print("| set | method | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for subset in SETS:
        classical = {
            k.split("@")[0]: v for k, v in first.items() if k.endswith(f"@{subset}") and not k.startswith("model@")
        }
        if not classical:
            continue
        for name, rows in scores.items():
            if f"model@{subset}" in rows:
                print(
                    f"| {subset} | {name} | " + " | ".join(cell(rows[f"model@{subset}"], k) for k, _ in COLUMNS) + " |"
                )
        for method, values in classical.items():
            print(f"| {subset} | `{method}` | " + " | ".join(cell(values, k) for k, _ in COLUMNS) + " |")
        model = scores[files[0][0]][f"model@{subset}"]
        margins = []
        for key, _ in COLUMNS:
            if key in HIGHER_IS_BETTER:
                best = max(v[key] for v in classical.values())
                margins.append(f"{model[key] - best:+.3f}")
            else:
                margins.append("")
        print(f"| {subset} | {files[0][0]} − best classical | " + " | ".join(margins) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

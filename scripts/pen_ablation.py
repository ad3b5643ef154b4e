"""The pen-options ablation of issue 21: what each addition to the training ink buys, measured
on the validation split and the validation fonts (``evaluate --split val``), never on the test set.

Each variant fine-tunes the same trained run (its last stage's best) for ``--epochs`` dense
epochs with its own pen options on top of those of the variant it names as its parent
(``control`` adds none: it measures what the fine-tuning itself buys), then is scored by
``evaluate --split val``. Wide pens bought the most, so every later option is measured on top
of them alone, not on top of options that bought nothing. A variant whose
scores exist is not run again, and one stopped mid-training is resumed, so the script continues
where a stop left it.

Run: ``python scripts/pen_ablation.py RUN --hanzi-dir HANZI --fonts-dir VALFONTS --out DIR``
(``--only NAME ...`` runs some variants; ``--override KEY=VALUE ...`` adds overrides to every
variant's training, such as ``experiment=large_model`` for a run of the large backbone, whose
weights fit no other model; ``--any-fonts`` scores every font in ``--fonts-dir``, such as the
candidate fonts, not only the validation fonts). Prints one markdown table: per variant, stroke F1 and
ink recall of the clean, scan and brush validation sets, and the fonts' count error, exact-count
share, traced/true ratio and ink recall over all validation fonts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from inktrace_train.cli.views import add_views_option


def wide_pens(widest: float) -> List[str]:
    return ["data.pen_width_min=0.8", f"data.pen_width_max={widest}", "data.pen_width_sampling=log_uniform"]


# (name, parent, own options): a variant trains with its own options and all of its parent's.
VARIANTS = (
    ("control", None, []),
    ("+ wide pens", "control", wide_pens(7.0)),
    ("wide pens to 10 px", "control", wide_pens(10.0)),
    ("wide pens to 14 px", "control", wide_pens(14.0)),
    ("+ pressure", "+ wide pens", ["data.pen_pressure=0.4"]),
    ("+ nib, flat ends", "+ pressure", ["data.pen_nib=0.2", "data.pen_flat_caps=0.3"]),
    ("wide pens + outlines", "+ wide pens", ["data.outline_ink=0.2"]),
    ("wide pens + hairlines", "+ wide pens", ["data.hairlines=0.3"]),
    ("ink joins", "control", ["data.hairline_intensity_max=1.0", "data.hairline_width_max=2.0"]),
    ("angular corners", "control", ["data.angular=0.5"]),
    ("angular + flat ends", "angular corners", ["data.pen_flat_caps=0.3"]),
    ("angular + ink joins", "angular corners", ["data.hairline_intensity_max=1.0", "data.hairline_width_max=2.0"]),
    ("angular + uniform widths", "angular corners", ["data.pen_width_sampling=uniform"]),
    ("angular + cursive joins", "angular corners", ["data.cursive_joins=0.3"]),
)
SETS = ("clean", "scan", "brush")


def overrides(name: str) -> List[str]:
    """The pen options of a variant: its own and those of its parents."""
    table = {variant: (parent, own) for variant, parent, own in VARIANTS}
    if name not in table:
        raise SystemExit(f"no variant {name!r}; the variants: {', '.join(table)}")
    parent, own = table[name]
    return (overrides(parent) if parent else []) + own


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def run(command: List[str], log: Path) -> None:
    print("$", " ".join(command), flush=True)
    with open(log, "a") as f:
        if subprocess.run(command, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"failed: {' '.join(command)} (see {log})")


def variant(args, name: str) -> Dict[str, dict]:
    out = Path(args.out) / slug(name)
    scores = out / f"val_views{args.views}.json"  # scores cached under other views are not mixed in
    if not scores.is_file():
        out.mkdir(parents=True, exist_ok=True)
        train = [
            sys.executable, "-m", "inktrace_train", "stage=dense", f"stage.init_from={args.run}",
            "data=mixed", f"data.hanzi_dir={args.hanzi_dir}", f"training.epochs={args.epochs}",
            f"training.lr={args.lr}", f"hydra.run.dir={out / 'run'}", *args.override, *overrides(name),
        ]  # fmt: skip
        status = out / "run" / "run.json"
        if not status.is_file():
            run(train, out / "log.txt")
        elif json.loads(status.read_text())["stages"].get("dense", {}).get("status") != "done":
            run([sys.executable, "-m", "inktrace_train", f"+resume={out / 'run'}"], out / "log.txt")  # stopped
        evaluate = [
            sys.executable, "-m", "inktrace_train.evaluate", str(out / "run"), "--split", "val", "--n", str(args.n),
            "--hanzi-dir", args.hanzi_dir, "--fonts-dir", args.fonts_dir, "--json", str(scores),
            "--views", str(args.views), *(["--any-fonts"] if args.any_fonts else []),
        ]  # fmt: skip
        run(evaluate, out / "log.txt")
    return json.loads(scores.read_text())


def row(name: str, scores: Dict[str, dict]) -> str:
    cells = []
    for subset in SETS:
        model = scores.get(f"model@{subset}", {})
        cells += [f"{model.get('stroke_f1', float('nan')):.3f}", f"{model.get('ink_recall', float('nan')):.3f}"]
    fonts = scores.get("model@fonts", {})
    for key in ("count_error", "count_exact", "traced_true_ratio", "ink_recall"):
        cells.append(f"{fonts.get(key, float('nan')):.3f}")
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="the trained run (or checkpoint) every variant starts from")
    p.add_argument("--hanzi-dir", required=True)
    p.add_argument("--fonts-dir", required=True, help="the validation fonts (data.fonts.FETCH_VAL)")
    p.add_argument("--out", required=True, help="a folder: a run and its scores per variant")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--n", type=int, default=128, help="validation glyphs per set and per font")
    p.add_argument("--only", nargs="+", help="run these variants only")
    p.add_argument("--any-fonts", action="store_true", help="score every font in --fonts-dir (the candidates)")
    p.add_argument(
        "--override", nargs="+", default=[], metavar="KEY=VALUE",
        help="overrides for every variant's training, before the variant's own (experiment=large_model)",
    )  # fmt: skip
    add_views_option(p, what="each validation glyph")
    args = p.parse_args(argv)
    not_pairs = [o for o in args.override if "=" not in o]
    if not_pairs:  # --override takes every word up to the next option, a RUN after it too
        p.error(f"--override takes KEY=VALUE items, not {not_pairs[0]!r}: put RUN before --override")
    if args.run is None:
        p.error("the following arguments are required: run")
    names = args.only or [name for name, _, _ in VARIANTS]
    results = {name: variant(args, name) for name in names}
    head = [f"{s} {c}" for s in SETS for c in ("stroke F1", "ink recall")]
    head += ["fonts count err", "fonts exact", "fonts traced/true", "fonts ink recall"]
    print("| variant | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    first = next(iter(results.values()))  # the classical rows: the same images for every variant
    classical = sorted({k.split("@")[0] for k in first if not k.startswith("model@")})
    for name, scores in results.items():
        print(row(name, scores))
    for method in classical:
        print(
            row(f"`{method}`", {f"model@{k.split('@')[1]}": v for k, v in first.items() if k.startswith(method + "@")})
        )


if __name__ == "__main__":
    main()

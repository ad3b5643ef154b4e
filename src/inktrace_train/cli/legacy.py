"""The old command lines, translated: ``python -m inktrace_train.legacy train_dense --lr 1e-4 ...``.

Users arrive with ``train_structural.py`` / ``train_dense.py`` invocations in
their notes and job scripts. This prints the equivalent new command and a
one-line deprecation note, then runs it. Unknown old flags are refused by name.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import List, NoReturn

from inktrace_train.errors import fail

SCRIPTS = {"train_structural": "structural", "train_dense": "dense"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"legacy {self.prog}: {message}")


def parser(script: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog=script,
        allow_abbrev=False,
        add_help=True,
        description="Deprecated: translates the old script's flags to `python -m inktrace_train`.",
    )
    p.add_argument(
        "--from-scratch",
        "--from_scratch",
        action="store_true",
        dest="from_scratch",
        help="dense without structural weights -> stage.init_from=null",
    )
    p.add_argument("--embed-dim", "--embed_dim", type=int, dest="embed_dim", help="-> model.embed_dim")
    p.add_argument("--num-layers", "--num_layers", type=int, dest="num_layers", help="-> model.num_layers")
    p.add_argument("--lr", type=float, help="-> training.lr")
    p.add_argument("--epochs", type=int, help="-> training.epochs")
    p.add_argument("--batch_size", "--batch-size", type=int, dest="batch_size", help="-> training.batch_size")
    p.add_argument("--init_from", "--init-from", dest="init_from", help="-> stage.init_from=PATH")
    p.add_argument("--resume", help="-> +resume=PATH (the config comes from the run)")
    p.add_argument("--stage", type=int, choices=(1, 2), help="1 -> stage=structural, 2 -> stage=dense")
    return p


def translate(script: str, argv: List[str]) -> List[str]:
    """Old flags -> new overrides, e.g. ``["stage=dense", "training.lr=0.0001"]``."""
    if script not in SCRIPTS:
        fail(f"legacy: unknown old script '{script}'; known: {', '.join(SCRIPTS)}")
    args, unknown = parser(script).parse_known_args(argv)
    if unknown:
        fail(
            f"legacy {script}: unknown old flag(s) {' '.join(unknown)}; "
            "see `python -m inktrace_train.legacy SCRIPT --help` for the flags that carry over"
        )
    if args.from_scratch and args.init_from:
        fail(f"legacy {script}: --from-scratch and --init_from contradict each other")
    if args.resume:
        return [f"+resume={args.resume}"]  # the run's own config; other flags would be refused anyway
    stage = SCRIPTS[script]
    if args.stage and {1: "structural", 2: "dense"}[args.stage] != stage:
        other = next(name for name, s in SCRIPTS.items() if s != stage)
        fail(
            f"legacy {script}: --stage {args.stage} contradicts {script}, which trains the {stage} stage; "
            f"use `python -m inktrace_train.legacy {other}`"
        )
    new = [f"stage={stage}"]
    for value, key in (
        (args.embed_dim, "model.embed_dim"),
        (args.num_layers, "model.num_layers"),
        (args.lr, "training.lr"),
        (args.epochs, "training.epochs"),
        (args.batch_size, "training.batch_size"),
        (args.init_from, "stage.init_from"),
    ):
        if value is not None:
            new.append(f"{key}={value}")
    if args.from_scratch:
        new.append("stage.init_from=null")
    return new


def main(argv: List[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m inktrace_train.legacy {train_structural,train_dense} [old flags]"
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return
    if not argv:
        print(usage, file=sys.stderr)
        fail("legacy: name the old script (train_structural or train_dense) and its flags")
    script, rest = argv[0], argv[1:]
    if rest and rest[0] in ("-h", "--help"):
        parser(script).print_help()
        return
    overrides = translate(script, rest)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "inktrace_train", *overrides])
    print(f"{script} is deprecated; the same run is: {command}", file=sys.stderr, flush=True)
    from inktrace_train.__main__ import main as run

    sys.argv = [sys.argv[0], *overrides]
    run()


if __name__ == "__main__":
    main()

"""``python -m inktrace_train.report PATH``: rebuild summary.csv / summary.md for a sweep
directory or any directory of runs, and print the table."""

from __future__ import annotations

import argparse
from pathlib import Path

from inktrace_train.errors import fail
from inktrace_train.launch.sweeps import write_summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inktrace_train.report", description=__doc__)
    parser.add_argument("path", type=Path, help="a sweep directory, a run directory or e.g. outputs/")
    args = parser.parse_args(argv)
    if not args.path.is_dir():
        fail(f"report: no such directory: {args.path}")
    markdown = write_summary(args.path)
    if markdown is None:
        fail(f"report: no runs under {args.path} (no run.json or job.json found)")
    print(markdown, end="")
    print(f"\nwritten: {args.path / 'summary.csv'}, {args.path / 'summary.md'}")


if __name__ == "__main__":
    main()

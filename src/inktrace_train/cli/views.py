"""The ``--views`` option of the commands that trace (predict, evaluate and the scripts)."""

from __future__ import annotations

import argparse

from inktrace_train.evaluation.views import DEFAULT_VIEWS, VIEWS


def add_views_option(p: argparse.ArgumentParser, flag: str = "--views", what: str = "each glyph") -> None:
    p.add_argument(
        flag,
        type=int,
        default=DEFAULT_VIEWS,
        choices=VIEWS,
        help=f"read {what} as it is (1) or in 4 views, its 1-px shifts' maps averaged (default"
        " %(default)s: more accurate; the model's share of the time x4)",
    )

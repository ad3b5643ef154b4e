"""The ``--views`` option of the commands that trace (predict, evaluate and the scripts)."""

from __future__ import annotations

import argparse
from typing import Optional

from inktrace_train.evaluation.views import DEFAULT_VIEWS, VIEWS


def add_views_option(
    p: argparse.ArgumentParser, flag: str = "--views", what: str = "each glyph", default: Optional[int] = DEFAULT_VIEWS
) -> None:
    """``flag`` (1 or 4); ``default=None`` lets a caller tell an option left out from one given."""
    p.add_argument(
        flag,
        type=int,
        default=default,
        choices=VIEWS,
        help=f"read {what} as it is (1) or in 4 views, its 1-px shifts' maps averaged (default"
        f" {DEFAULT_VIEWS}: more accurate; the model's share of the time x4)",
    )

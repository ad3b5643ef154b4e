"""The checkpoint loader's warnings muted while a tool runs: the tools report what loading found
(a converted layout, a fallback) themselves, and the warnings would repeat it."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

LOADER = "inktrace_train.checkpoint.store"  # the loader's logger (its module's name); no torch imported here


@contextmanager
def loader_quiet() -> Iterator[None]:
    """The loader's logger at ERROR for the block, its level restored after: a caller in the same
    process (a test, a notebook) keeps its own."""
    log = logging.getLogger(LOADER)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


__all__ = ["loader_quiet"]

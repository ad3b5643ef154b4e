"""A verified on-disk cache of parsed arrays: one ``.npz`` with a key and a sha256.

A corpus is parsed once and reloaded in well under a second. The file records what it was
made from (``key``: package and parser versions, the list of source files) and a sha256 of its
arrays, so a corrupt, truncated or stale file is detected and rebuilt, never used. Writes are
atomic (:mod:`inktrace_train.run.atomic`: a temporary file in the same folder, then a rename).

What a process has loaded stays in one memo (:data:`MEMO`, shared by every source), which
:func:`forget` empties.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Sequence

import numpy as np

from inktrace_train.run.atomic import WriteError, commit, write_temp


def digest(arrays: Dict[str, np.ndarray], names: Sequence[str]) -> str:
    """sha256 over every array's dtype, shape and bytes, in the order of ``names``."""
    h = hashlib.sha256()
    for key in names:
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read(path: Path, names: Sequence[str], expected: Dict[str, object]) -> Dict[str, np.ndarray]:
    """The arrays of a cache file whose key matches ``expected`` and whose checksum holds.

    Raises:
        ValueError: (or any I/O / zip error) when the file is stale or corrupt.
    """
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        arrays = {k: npz[k] for k in names}
    stale = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if stale:
        raise ValueError(f"stale cache (cached, current): {stale}")
    if meta.get("sha256") != digest(arrays, names):
        raise ValueError("checksum mismatch")
    return arrays


def write(path: Path, arrays: Dict[str, np.ndarray], names: Sequence[str], key: Dict[str, object]) -> None:
    """Write the arrays with their key and checksum, atomically. A cache that cannot be written
    (a read-only or missing folder, a full disk) is a warning: the data is parsed again next time."""
    meta = dict(key, sha256=digest(arrays, names))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = write_temp(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **{k: arrays[k] for k in names}))
        commit(tmp, path)
    except (OSError, WriteError) as e:  # WriteError: the temp file's write or rename failed (a full disk)
        logging.getLogger(__name__).warning(
            "cannot write the cache %s (%s): the data is parsed again at every start; set data.cache_dir "
            "to a writable folder",
            path,
            getattr(e, "strerror", None) or e,
        )


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/inktrace_train`` (``~/.cache/inktrace_train``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "inktrace_train"


MEMO: Dict[Hashable, Any] = {}  # what this process has loaded, by (cache file, key)


def load_or_build(
    path: Path,
    names: Sequence[str],
    key: Dict[str, object],
    build: Callable[[], Dict[str, np.ndarray]],
    log: logging.Logger,
    what: str,
) -> Dict[str, np.ndarray]:
    """Parsed arrays from this process's memo, the verified cache file, or ``build()`` (then cached).

    Args:
        path: the cache file.
        names: the arrays it holds.
        key: what the cache must have been made from (versions, file list).
        build: parses the source; called only when no valid cache matches.
        log, what: where and under which name an unusable cache is reported.

    Returns:
        The arrays, read-only (every user shares them).
    """
    memo_key = (str(path.resolve()), json.dumps(key, sort_keys=True))
    if memo_key in MEMO:
        return MEMO[memo_key]
    arrays = None
    if path.exists():
        try:
            arrays = read(path, names, key)
        except Exception as exc:  # any failure to read means "do not trust it"
            log.warning("%s cache %s is unusable (%s); rebuilding it", what, path, exc)
    if arrays is None:
        arrays = build()
        write(path, arrays, names, key)
    for a in arrays.values():
        a.flags.writeable = False
    MEMO[memo_key] = arrays
    return arrays


def forget() -> None:
    """Forget what this process loaded, every source's (tests use it to force a cache read)."""
    MEMO.clear()

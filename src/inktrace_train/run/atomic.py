"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

A kill at any instant leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import IO, Any, Callable, List

from inktrace_train.errors import RunFailed, first_line


def fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteError(RunFailed):
    """A write that failed (disk full, read-only, quota): the previous file is untouched."""


def cause(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return first_line(e)


def write_temp(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write to a hidden temp file beside ``path`` and fsync it; the caller renames it. On failure
    the temp file is removed and :class:`WriteError` names the file and the cause."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {cause(e)}; the previous {path.name} is intact") from None
    return tmp


TEMP_NAME = re.compile(r"^\..+\.tmp(\d+)$")  # what write_temp names its files


def remove_stale_temps(directory: Path) -> List[str]:
    """Delete the temp files that killed processes left in ``directory``; only for the one
    process that writes there (it holds the run's lock). Returns the names removed."""
    removed = []
    for path in directory.glob(".*.tmp*"):
        found = TEMP_NAME.match(path.name)
        if found and int(found.group(1)) != os.getpid():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def commit(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {cause(e)}; the previous {path.name} is intact") from None


def check_writable(directory: Path) -> None:
    """Make ``directory`` and prove a file can be written there, before any work is spent."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write_probe{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise WriteError(f"cannot write in {directory}: {cause(e)}") from None


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    commit(write_temp(path, write), path)


def write_json(path: Path, obj: Any) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

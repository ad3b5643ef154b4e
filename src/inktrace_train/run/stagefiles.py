"""A stage's checkpoint files as a resume sees them, without torch: the manifest (sizes, SHA-256,
rotation order), the seal each file carries, and which file is the newest valid one.

Every checkpoint file ends in a seal, ``SEAL`` and the SHA-256 of the ``torch.save`` bytes before
it; the manifest also records each file's size and SHA-256 (and those of the file it replaced,
until the rename). :mod:`inktrace_train.checkpoint.store` writes both; the resume plan
(:mod:`inktrace_train.launch.resume`) picks a file here before torch is imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from inktrace_train.errors import UserError
from inktrace_train.run.atomic import sha256_file
from inktrace_train.run.rundir import BEST, LATEST, MANIFEST, PERIODIC

log = logging.getLogger(__name__)

FORMAT = 1  # the manifest's own format
SEAL = b"\nINKTRACE-SHA256:"
SEAL_SIZE = len(SEAL) + 64


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, corrupt or of an unknown format."""


def unseal(path: Path, data: bytes) -> Tuple[bytes, bool]:
    """The ``torch.save`` bytes of a file and whether it carried a seal; a seal that does not
    match its bytes raises. A file written before seals existed has none."""
    seal = data[-SEAL_SIZE:]
    if not seal.startswith(SEAL):
        return data, False
    payload = data[:-SEAL_SIZE]
    if hashlib.sha256(payload).hexdigest().encode() != seal[len(SEAL) :]:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 does not match the digest sealed in it")
    return payload, True


def intact(path: Path) -> Optional[str]:
    """None when a file's bytes are whole: its seal matches, or (a file without a seal, from an
    older tool) it is a ``torch.save`` zip archive whose members pass their CRC checks. Else what
    is wrong. Reads the file; loads nothing."""
    try:
        payload, sealed = unseal(path, path.read_bytes())
    except CheckpointError as e:
        return str(e)
    except OSError as e:
        return f"cannot read {path}: {e.strerror or e}"
    if sealed:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError):
        return f"{path} is not a checkpoint (not a torch.save archive) or is truncated"
    return f"{path} is corrupt ({bad} fails its CRC check)" if bad else None


def _entry_ok(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)


def well_formed(manifest: Any) -> bool:
    return (
        isinstance(manifest, dict)
        and isinstance(manifest.get("files"), dict)
        and all(
            _entry_ok(e) and _entry_ok(e.get("previous", {"size": 0, "sha256": ""})) for e in manifest["files"].values()
        )
        and isinstance(manifest.get("periodic"), list)
        and all(isinstance(n, str) and PERIODIC.match(n) for n in manifest["periodic"])
    )


def read_manifest(directory: Path) -> Dict[str, Any]:
    """The stage's manifest; without a readable one, a manifest of the files present (from an
    older tool, or a lost manifest: each file is then verified by its own seal)."""
    path = directory / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
            if well_formed(manifest):
                return manifest
        except (OSError, ValueError):
            pass
        log.warning("%s is unreadable; the checkpoints are verified by their own SHA-256 seals", path)
    periodic = sorted(p.name for p in directory.glob("checkpoint_epoch_*.pth") if PERIODIC.match(p.name))
    return {"format": FORMAT, "best_metric": None, "best_epoch": None, "periodic": periodic, "files": {}}


def candidates(manifest: Dict[str, Any]) -> List[str]:
    """Names to resume from, newest first: latest, then the periodic files and best by epoch.

    Best is a whole training state too (the same save as that epoch's latest), so a run whose
    latest is damaged before its first periodic file still resumes, from its best epoch. Without
    a manifest its epoch is unknown and it comes last."""
    best_epoch = (manifest["files"].get(BEST) or {}).get("epoch", manifest.get("best_epoch"))
    older = [(int(PERIODIC.match(n).group(1)), 1, n) for n in manifest["periodic"]]
    older.append((best_epoch if isinstance(best_epoch, int) else -1, 0, BEST))
    return [LATEST] + [name for *_, name in sorted(older, reverse=True)]


def verify(directory: Path, manifest: Dict[str, Any], name: str) -> Optional[str]:
    """None when ``name`` matches the manifest (size and SHA-256), else what is wrong."""
    path = directory / name
    if not path.is_file():
        return f"{path} is missing"
    entry = manifest["files"].get(name)
    if entry is None:
        return None  # not written by a manager (e.g. copied in): its seal is checked on load
    accepted = [entry] + ([entry["previous"]] if "previous" in entry else [])
    size = path.stat().st_size
    if not any(size == e["size"] for e in accepted):
        return f"{path} is truncated or corrupt (size {size}, manifest says {entry['size']})"
    digest = sha256_file(path)
    if not any(digest == e["sha256"] for e in accepted):
        return f"{path} is corrupt (SHA-256 differs from the manifest)"
    return None


def newest_valid(directory: Path) -> Optional[Path]:
    """The newest checkpoint of a stage that matches its manifest and is intact; None when the
    stage has no checkpoint file at all (killed before its first save). Warns about each bad
    file passed over.

    Raises:
        CheckpointError: there are files, and none of them is valid.
    """
    manifest = read_manifest(directory)
    names = [n for n in candidates(manifest) if (directory / n).is_file()]
    problems = []
    for name in names:
        problem = verify(directory, manifest, name) or intact(directory / name)
        if problem is None:
            return directory / name
        problems.append(problem)
        log.warning("%s; falling back to an older checkpoint", problem)
    if not names:
        return None
    raise CheckpointError(f"no valid checkpoint in {directory}: {'; '.join(problems)}")

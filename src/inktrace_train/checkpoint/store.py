"""Checkpoints (format version 1): one plain dict per file, written atomically.

Files live in ``<run_dir>/checkpoints/<stage>/``: ``checkpoint_latest.pth`` after
every epoch, ``checkpoint_best.pth`` when the stage's metric improves, and
``checkpoint_epoch_NNNN.pth`` every ``save_interval`` epochs, of which the last
``keep_last_n`` are kept. ``manifest.json`` records each file's size and SHA-256,
the rotation order and the best metric, so all of it survives a resume.

Every file also proves itself: after the ``torch.save`` bytes comes a seal, ``SEAL`` and the
SHA-256 of those bytes in hex (``torch.load`` ignores trailing bytes, so plain PyTorch still
reads the file). A flipped or cut byte anywhere is found by that digest, with no manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from inktrace_train.checkpoint.convert import FORMAT_VERSION, upgrade
from inktrace_train.errors import first_line
from inktrace_train.run.atomic import commit, write_json, write_temp
from inktrace_train.run.rundir import BEST, LATEST, MANIFEST, now_iso, periodic_name
from inktrace_train.run.stagefiles import SEAL, CheckpointError, read_manifest, unseal, verify

log = logging.getLogger(__name__)

# Test-only: a file to which every checkpoint write appends "begin|end|rotate STAGE/NAME STEP", so
# the kill campaign (scripts/kill_campaign.py) can aim kills inside saves and check what a resume loads.
SAVE_HOOK_ENV = "INKTRACE_SAVE_HOOK"


def sealed_bytes(state: Dict[str, Any]) -> bytes:
    """A checkpoint file's bytes: ``torch.save(state)`` followed by the seal, the SHA-256 of the
    bytes before it."""
    buffer = io.BytesIO()
    torch.save({**state, "metadata": {**(state.get("metadata") or {}), "sealed": "sha256"}}, buffer)
    data = buffer.getvalue()
    return data + SEAL + hashlib.sha256(data).hexdigest().encode()


@dataclass
class Checkpoint:
    """What a checkpoint file holds (format version 1), typed: the one place its keys are named.

    The file itself is the plain dict :meth:`to_dict` returns, so ``torch.load(path,
    weights_only=True)`` reads it with no class of ours. ``None`` marks what an older,
    converted file did not have.
    """

    model_state_dict: Dict[str, Any]
    epoch: Optional[int] = 0  # completed epochs
    step_in_epoch: int = 0  # micro-batches done in the epoch after them (mid-epoch saves)
    global_step: Optional[int] = 0  # optimizer steps done
    optimizer_state_dict: Optional[Dict[str, Any]] = None
    scheduler_state_dict: Optional[Dict[str, Any]] = None
    scaler_state_dict: Optional[Dict[str, Any]] = None  # fp16 loss scaling only
    metric: Optional[float] = None  # the validation metric when this file was written
    best_metric: Optional[float] = None  # the stage's best so far: the one source of "is best"
    config: Optional[Dict[str, Any]] = None  # the resolved Config as plain containers
    metadata: Dict[str, Any] = field(default_factory=dict)  # stage, run_id, versions, git commit
    timestamp: Optional[str] = None  # ISO 8601
    rng_state: Optional[Dict[str, Any]] = None  # python, numpy, torch, cuda generators
    ema_state_dict: Optional[Dict[str, Any]] = None  # training.ema_decay: weights, decay, updates
    version: int = FORMAT_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: Dict[str, Any]) -> Checkpoint:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in names})

    def inference_weights(self) -> Dict[str, Any]:
        """The weights to validate, trace and fine-tune from: the weight average where the run
        kept one (``training.ema_decay``), else the trained weights."""
        return self.ema_state_dict["weights"] if self.ema_state_dict else self.model_state_dict

    @property
    def stage(self) -> Optional[str]:
        return self.metadata.get("stage") or ((self.config or {}).get("stage") or {}).get("name")


def load_checkpoint(path: Path) -> Checkpoint:
    """Load a checkpoint with ``weights_only=True`` (no code can run on load), on CPU.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or newer than we know.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload, sealed = unseal(path, path.read_bytes())
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    foreign = _not_torch(path, payload)
    if foreign:
        raise CheckpointError(f"cannot load checkpoint {path}: {foreign}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "pickle protocol" noise on foreign files
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # torn or foreign bytes fail in many ways (IndexError, KeyError, EOFError, ...)
        raise CheckpointError(f"cannot load checkpoint {path}: {_load_error(e)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a {type(state).__name__}, expected a dict)")
    if not sealed and isinstance(state.get("metadata"), dict) and state["metadata"].get("sealed"):
        raise CheckpointError(f"{path} is truncated: the SHA-256 seal it was written with is missing")
    version = state.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this inktrace_train "
            f"reads versions up to {FORMAT_VERSION}: upgrade inktrace_train"
        )
    try:
        state, missing = upgrade(state)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if not isinstance(state.get("model_state_dict"), dict):
        raise CheckpointError(f"{path} is not a checkpoint (no model_state_dict)")
    ckpt = Checkpoint.from_dict(state)
    ckpt.metadata = dict(ckpt.metadata or {})
    if ckpt.metadata.get("converted_from"):
        ckpt.metadata["missing"] = missing
        log.warning(
            "%s is an older checkpoint (%s layout), converted on load%s",
            path,
            ckpt.metadata["converted_from"],
            f"; it has no {', '.join(missing)}" if missing else "",
        )
    return ckpt


# The first bytes of files often given in a checkpoint's place (the image and the checkpoint
# swapped on predict's command line, say).
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def _not_torch(path: Path, payload: bytes) -> Optional[str]:
    """Why ``payload`` cannot be a PyTorch file (a zip archive, or a legacy pickle), or None."""
    if not payload:
        return "the file is empty (0 bytes)"
    if payload.startswith(b"PK") or payload[:1] == b"\x80":
        return None
    if path.suffix.lower() == ".onnx":
        return "it is an ONNX model, not a PyTorch checkpoint (predict and evaluate read it with --onnx MODEL)"
    if payload.startswith(IMAGE_MAGIC) or (payload.startswith(b"RIFF") and payload[8:12] == b"WEBP"):
        return "it is an image, not a PyTorch checkpoint (the checkpoint comes first, then the images)"
    return "not a PyTorch checkpoint (neither a zip archive nor a pickle)"


def _load_error(e: Exception) -> str:
    text = str(e)
    if "failed finding central directory" in text or "failed reading zip archive" in text:
        return "its zip archive is incomplete: the file is truncated or damaged"
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, re.S)
        reason = found.group(1).strip().splitlines()[0] if found else "unsupported content"
        return (
            f"it holds content outside the plain checkpoint format ({reason}); refused, since loading it could run code"
        )
    return first_line(e)


def _announce(event: str, path: Path, step: Optional[int]) -> None:
    hook = os.environ.get(SAVE_HOOK_ENV)
    if hook:
        with open(hook, "a") as f:
            f.write(f"{event} {path.parent.name}/{path.name} {step}\n")


class CheckpointManager:
    """Writes, rotates and verifies the checkpoints of one stage.

    Args:
        directory: ``<run_dir>/checkpoints/<stage>``.
        keep_last_n: periodic files kept; best and latest are never deleted.
        save_interval: write a periodic file every this many epochs.
    """

    def __init__(self, directory: Path, keep_last_n: int, save_interval: int):
        self.directory = Path(directory)
        self.keep_last_n = keep_last_n
        self.save_interval = save_interval
        self.manifest = read_manifest(self.directory)

    # --- manifest -----------------------------------------------------------------
    def _write_manifest(self) -> None:
        write_json(self.directory / MANIFEST, self.manifest)

    # --- writing ------------------------------------------------------------------
    def _write(self, name: str, ckpt: Checkpoint) -> None:
        """Temp file → hash → manifest (accepting old and new hash) → rename.

        The manifest is written before the rename so that a kill between the two
        leaves a file whose hash the manifest still accepts (the old one).
        """
        path = self.directory / name
        _announce("begin", path, ckpt.global_step)
        data = sealed_bytes(ckpt.to_dict())
        tmp = write_temp(path, lambda f: f.write(data))
        entry = {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),  # of the bytes just written: no read-back
            "epoch": ckpt.epoch,
            "global_step": ckpt.global_step,
            "metric": ckpt.metric,
            "time": now_iso(),
        }
        previous = self.manifest["files"].get(name)
        if previous is not None:
            entry["previous"] = {"size": previous["size"], "sha256": previous["sha256"]}
        self.manifest["files"][name] = entry
        try:
            self._write_manifest()
        except BaseException:  # the manifest could not record it: the new file is not kept
            tmp.unlink(missing_ok=True)
            raise
        commit(tmp, path)
        _announce("end", path, ckpt.global_step)

    def save(self, ckpt: Checkpoint, is_best: bool) -> None:
        """Write best when ``is_best`` (the trainer's decision, from its own state), the periodic
        file when due (then rotate), and latest last. The manifest records, it never decides.

        Latest goes last: a kill before it is renamed leaves the previous latest, and the resume
        replays this epoch, rewriting best and the periodic file identically. Written first, a
        kill could leave a latest whose epoch was the best while no best file holds it.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        epoch = ckpt.epoch or 0
        if is_best:
            self._write(BEST, ckpt)
            self.manifest["best_metric"] = ckpt.metric
            self.manifest["best_epoch"] = epoch
        if epoch % self.save_interval == 0 and ckpt.step_in_epoch == 0:
            name = periodic_name(epoch)
            self._write(name, ckpt)
            self.manifest["periodic"] = [n for n in self.manifest["periodic"] if n != name] + [name]
            self._rotate()
        self._write(LATEST, ckpt)

    def _rotate(self) -> None:
        """Delete the oldest periodic files beyond keep_last_n (only after the new one is safe)."""
        while len(self.manifest["periodic"]) > self.keep_last_n:
            name = self.manifest["periodic"].pop(0)
            self.manifest["files"].pop(name, None)
            self._write_manifest()  # forget it first: a kill now leaves a stray file, not a dangling entry
            _announce("rotate", self.directory / name, None)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.directory / name)

    # --- reading ------------------------------------------------------------------
    def verify(self, name: str) -> Optional[str]:
        """None when ``name`` matches the manifest (size and SHA-256), else what is wrong."""
        return verify(self.directory, self.manifest, name)


def to_host(value: Any) -> Any:
    """A copy of ``value`` whose tensors are detached CPU copies: what a background write may
    serialise while training goes on changing the originals."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v) for v in value)
    return value


class BackgroundSaver:
    """Writes a stage's checkpoints in one background thread, so that a save stalls training only
    for the copy of the state to the host. One write at a time: the next save, and the end of the
    stage (:meth:`wait`), wait for the previous one and raise its failure there, never losing it.
    The atomic writes, seals and manifest are :class:`CheckpointManager`'s, unchanged."""

    def __init__(self, manager: CheckpointManager):
        from concurrent.futures import ThreadPoolExecutor

        self.manager = manager
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self.pending: Optional[Any] = None  # the Future of the write in flight

    def save(self, ckpt: Checkpoint, is_best: bool) -> None:
        self.wait()
        snapshot = Checkpoint.from_dict(to_host(ckpt.to_dict()))
        self.pending = self.pool.submit(self.manager.save, snapshot, is_best)

    def wait(self) -> None:
        """Block until the write in flight is on disk; raise its error, if any."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

"""Initialise a model from another stage's checkpoint (``stage.init_from``).

Initialising is not resuming: only weights come over; optimizer, schedule, epoch
and best metric start fresh.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch import nn

from inktrace_train.checkpoint.store import CheckpointError, load_checkpoint
from inktrace_train.config.schema import PIPELINE, backbone_diffs
from inktrace_train.errors import UserError
from inktrace_train.run.rundir import RunDir, best_checkpoint_in

log = logging.getLogger(__name__)


def resolve_init_path(path: str, stage: str) -> Path:
    """A checkpoint file as given, or a run directory's best checkpoint of the previous stage.

    A run directory that holds a best of ``stage`` too (a ``stage=all`` run given to
    ``stage=dense``) still gives its previous stage's, with a warning naming the file that would
    fine-tune its own; one without the previous stage's is an error naming what it does hold.
    """
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise CheckpointError(f"stage.init_from: no such file or directory: {p}")
    run = RunDir(p)
    previous = PIPELINE[max(PIPELINE.index(stage) - 1, 0)]
    best = best_checkpoint_in(p, [previous])
    if best is None:
        looked = run.best_checkpoint(previous).relative_to(p)
        held = best_checkpoint_in(p, PIPELINE)  # the best of another stage, if any
        hint = ""
        if held is not None:
            hint = f"; it holds {held.relative_to(p)}: to start from it, name the file: stage.init_from={held}"
        raise CheckpointError(f"stage.init_from: {p} holds no {previous} checkpoint (looked for {looked}){hint}")
    own = run.best_checkpoint(stage)
    if previous != stage and own.is_file():
        log.warning(
            "stage.init_from: %s holds a %s best too; a run directory gives its %s best (%s). "
            "To fine-tune its %s model instead, name the file: stage.init_from=%s",
            p, stage, previous, best.relative_to(p), stage, own,
        )  # fmt: skip
    return best


def module_of(name: str) -> str:
    """Group parameter names by module for the report: ``heads.keypoints``, ``stem``, ..."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "heads" else parts[0]


def transfer_weights(
    model: nn.Module, source: Dict[str, Any], allow_shape_mismatch: List[str]
) -> Dict[str, Dict[str, List[str]]]:
    """Copy every tensor whose name and shape match; returns the report by category and module.

    Raises:
        UserError: a shape mismatch on a parameter no ``allow_shape_mismatch`` pattern names.
    """
    target = model.state_dict()
    report: Dict[str, Dict[str, List[str]]] = {
        k: defaultdict(list) for k in ("transferred", "new", "dropped", "mismatched")
    }
    refused = []
    for name, value in source.items():
        if name not in target:
            report["dropped"][module_of(name)].append(name)
        elif target[name].shape != value.shape:
            report["mismatched"][module_of(name)].append(name)
            if not any(fnmatch.fnmatchcase(name, p) for p in allow_shape_mismatch):
                refused.append(f"{name}: checkpoint {tuple(value.shape)} vs model {tuple(target[name].shape)}")
        else:
            target[name] = value
            report["transferred"][module_of(name)].append(name)
    for name in target:
        if name not in source:
            report["new"][module_of(name)].append(name)
    if refused:
        raise UserError(
            "shape mismatch with stage.init_from checkpoint: "
            + "; ".join(refused)
            + ". List the parameters in stage.allow_shape_mismatch (fnmatch patterns) to "
            "initialise them fresh instead"
        )
    model.load_state_dict(target)
    return {k: dict(v) for k, v in report.items()}


def fingerprint(state: Dict[str, torch.Tensor], names: List[str]) -> str:
    """A short SHA-256 of the named tensors: shows which weights a stage started from."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def format_report(path: Path, report: Dict[str, Dict[str, List[str]]], model: nn.Module) -> str:
    lines = [f"weights from {path}:"]
    for category, modules in report.items():
        for module, names in sorted(modules.items()):
            lines.append(f"  {category:<12} {module:<22} {len(names)} tensors")
    moved = [n for names in report["transferred"].values() for n in names]
    lines.append(f"  fingerprint of the transferred weights: {fingerprint(model.state_dict(), moved)}")
    return "\n".join(lines)


def init_from(
    model: nn.Module, path: str, stage: str, model_cfg: Dict[str, Any], img_size: int, allow_shape_mismatch: List[str]
) -> str:
    """Load matching weights into ``model``; returns the printed report."""
    ckpt_path = resolve_init_path(path, stage)
    ckpt = load_checkpoint(ckpt_path)
    diffs = backbone_diffs(ckpt.config or {}, model_cfg, img_size)
    if diffs:
        raise UserError(
            f"backbone mismatch with stage.init_from checkpoint {ckpt_path} (checkpoint vs config): "
            f"{'; '.join(diffs)}. Use the same architecture, or train from scratch without stage.init_from"
        )
    report = transfer_weights(model, ckpt.inference_weights(), allow_shape_mismatch)
    text = format_report(ckpt_path, report, model)
    log.info("%s", text)
    return text

"""``+resume=PATH``: continue a run from its own record, with no other argument.

The config comes from the run directory's ``config.yaml`` (or from the checkpoint
when PATH is a loose file). Overrides given with resume are compared with the
stored values: equal ones are accepted silently (so re-running the original
command line with ``+resume=`` works), a short allow-list may change, anything
else is refused. No torch import here: a refused resume costs no startup time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

from inktrace_train.compose import config_dir, to_config
from inktrace_train.config import Config, ConfigError

# May change on resume. Exactness (bit-identical to an uninterrupted run) holds without changes;
# extending training.epochs recomputes the cosine horizon from the resume point.
ALLOWED_CHANGES = ("training.epochs", "data.num_workers", "training.device", "training.log_every_n_steps")
RESUME_KEYS = ("resume", "+resume", "++resume")


@dataclass
class ResumePlan:
    run_dir: Path  # where training continues
    config: Config  # the stored config with the allowed changes applied
    checkpoint: Optional[Path]  # an explicit checkpoint file, or None for the newest valid one
    changes: Dict[str, Any] = field(default_factory=dict)  # key -> new value
    overrides: List[str] = field(default_factory=list)  # the command line, for the record


def split_resume(overrides: List[str]) -> tuple[Optional[str], List[str]]:
    """The resume path given on the command line (if any) and the other overrides."""
    path, rest = None, []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in RESUME_KEYS:
            path = value.strip("'\"")
        else:
            rest.append(o)
    return path, rest


def _flatten(node: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(node, dict):
        out: Dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _compose_nested(overrides: List[str]) -> Dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a sweep job: reuse the app's search path
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def _compose(overrides: List[str]) -> Dict[str, Any]:
    return _flatten(_compose_nested(overrides))


def requested_changes(overrides: List[str]) -> Dict[str, Any]:
    """Every key the overrides set, with its value: keys that differ from the plain
    composition, plus keys named directly (which may happen to equal a default)."""
    if not overrides:
        return {}
    with_overrides, plain = _compose(overrides), _compose([])
    named = {o.lstrip("+~").partition("=")[0] for o in overrides}
    return {k: v for k, v in with_overrides.items() if v != plain.get(k) or k in named}


def run_config(run_dir: Path) -> Dict[str, Any]:
    """The run's config.yaml with the changes that earlier resumes made (recorded in run.json)."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    status = run_dir / "run.json"
    for record in json.loads(status.read_text()).get("resumes", []) if status.is_file() else []:
        for key, value in record.get("changes", {}).items():
            OmegaConf.update(cfg, key, value)
    return OmegaConf.to_container(cfg)


def stored_config(path: Path) -> tuple[Path, Dict[str, Any], Optional[Path]]:
    """(run dir, stored config as a plain dict, explicit checkpoint or None) for a resume PATH."""
    if not path.exists():
        raise ConfigError(f"resume: no such file or directory: {path}")
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"resume: {path} is not a run directory (it has no config.yaml)")
        return path, run_config(path), None
    run_dir = path.resolve().parents[2] if len(path.resolve().parents) > 2 else None
    if run_dir is not None and (run_dir / "config.yaml").is_file() and path.parent.parent.name == "checkpoints":
        return run_dir, run_config(run_dir), path
    from inktrace_train.checkpoint import load_checkpoint  # a loose file: its own config

    return None, load_checkpoint(path)["config"], path  # type: ignore[return-value]


def plan(path_text: str, overrides: List[str]) -> ResumePlan:
    """Check a resume request and build its config.

    Raises:
        ConfigError: missing path, not a run, or an override outside the allow-list.
    """
    run_dir, stored, checkpoint = stored_config(Path(path_text).expanduser())
    flat = _flatten(stored or {})
    if set(flat) != set(_flatten(_compose_nested([]))):
        # An older checkpoint without a (complete) config: the command line fills the rest.
        base = _compose_nested(overrides)
        missing = sorted(set(_flatten(base)) - set(flat))
        log.warning("resume: %s has no config for %s; taken from the command line and defaults",
                    path_text, ", ".join(missing) if len(missing) < 8 else f"{len(missing)} keys")
        stored = OmegaConf.to_container(OmegaConf.merge(base, stored or {}))
        flat = _flatten(stored)
    changes = {k: v for k, v in requested_changes(overrides).items() if flat.get(k) != v}
    refused = sorted(k for k in changes if k not in ALLOWED_CHANGES)
    if "stage.name" in refused:
        raise ConfigError(f"resume continues the run's own stage ({flat.get('stage.name')}); to start "
                          f"{changes['stage.name']} from its weights, use stage={changes['stage.name']} "
                          f"stage.init_from={path_text} (init_from takes weights, resume takes everything)")
    if refused:
        shown = ", ".join(f"{k} ({flat.get(k)!r} -> {changes[k]!r})" for k in refused)
        raise ConfigError(f"resume cannot change {shown}; allowed: {', '.join(ALLOWED_CHANGES)}. "
                          "To train with other settings from these weights, start a new run with "
                          f"stage.init_from={path_text}")
    cfg = OmegaConf.create(stored)
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    OmegaConf.update(cfg, "resume", None)
    return ResumePlan(run_dir=run_dir, config=to_config(cfg), checkpoint=checkpoint, changes=changes,
                      overrides=overrides)

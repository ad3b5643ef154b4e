"""The run directory: what a run leaves on disk besides checkpoints.

Layout (DESIGN.md): ``config.yaml`` (resolved config), ``run.json`` (status per
stage), ``env.json`` (versions, git commit), ``train.log`` (written by Hydra's
logging), ``tb/`` (TensorBoard) and ``checkpoints/<stage>/``. Only one process
writes here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

from inktrace_train.atomic import write_json, write_text
from inktrace_train.config import CONFIG_VERSION, Config, UserError, to_config

PACKAGES = ("inktrace_train", "torch", "numpy", "hydra-core", "omegaconf", "opencv-python-headless",
            "kanjivg", "tensorboard", "tqdm")


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@functools.lru_cache(maxsize=None)
def git_state(directory: Path) -> Dict[str, Any]:
    """Commit and dirty flag of the git checkout holding ``directory``, if any. Cached: two
    git subprocesses per call, asked for by env.json and by every stage's checkpoint metadata."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = None if commit is None else bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit, "dirty": dirty}


def environment() -> Dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "argv": sys.argv,
        "packages": versions,
        "git": git_state(Path(__file__).resolve().parent),
    }


def config_to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_to_dict(cfg: Config) -> Dict[str, Any]:
    """Plain dicts, lists and scalars: what a checkpoint stores (weights_only loads it)."""
    return dataclasses.asdict(cfg)


class RunDir:
    """One run's directory. ``run.json`` holds each stage's status and best metric."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.status_file = self.path / "run.json"

    def checkpoint_dir(self, stage: str) -> Path:
        return self.path / "checkpoints" / stage

    def tb_dir(self, stage: str) -> Path:
        """One TensorBoard run per stage: a resumed stage's purge of replayed steps
        must not touch the other stage's curves."""
        return self.path / "tb" / stage

    def stage_config_file(self, stage: str) -> Path:
        return self.checkpoint_dir(stage) / "config.yaml"

    def save_stage_config(self, cfg: Config) -> None:
        """Each stage's own resolved config, beside its checkpoints (resume reads it)."""
        path = self.stage_config_file(cfg.stage.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, config_to_yaml(cfg))

    @property
    def run_id(self) -> str:
        return self.path.name

    def create(self, cfg: Config, stages: List[Config]) -> None:
        """Record a new run: resolved config, each stage's config, environment, pending stages."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.config_file, config_to_yaml(cfg))
        for stage_cfg in stages:
            self.save_stage_config(stage_cfg)
        write_json(self.path / "env.json", environment())
        status = {s.stage.name: {"status": "pending"} for s in stages}
        write_json(self.status_file, {"run_id": self.run_id, "config_version": CONFIG_VERSION,
                                      "created": now_iso(), "pipeline": list(status), "stages": status,
                                      "resumes": []})

    def stage_configs(self) -> List[Config]:
        """The stages of this run, in order, each with its saved config (a single-stage
        run's root config.yaml stands in for a missing stage file)."""
        root = OmegaConf.load(self.config_file)
        configs = []
        for name in self.status()["pipeline"]:
            path = self.stage_config_file(name)
            if path.is_file():
                configs.append(to_config(OmegaConf.load(path)))
            elif root.stage.name == name:
                configs.append(to_config(root))
            else:
                raise UserError(f"{path} is missing: the config of stage {name} of this run is unknown")
        return configs

    def status(self) -> Dict[str, Any]:
        return json.loads(self.status_file.read_text())

    def record_resume(self, **fields: Any) -> None:
        """Each resume's own record, beside the original one (which is never rewritten)."""
        state = self.status()
        state["resumes"].append({"time": now_iso(), "argv": sys.argv, **fields})
        write_json(self.status_file, state)

    def update_stage(self, stage: str, **fields: Any) -> None:
        state = self.status()
        state["stages"].setdefault(stage, {}).update(fields)
        write_json(self.status_file, state)


def discard_unused(run_dir: Path) -> bool:
    """Delete ``run_dir`` after a failed start if it holds no checkpoint; never touches saved work."""
    if not run_dir.is_dir() or any(run_dir.glob("checkpoints/**/*.pth")):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True

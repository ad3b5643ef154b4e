"""The run directory: :class:`RunDir` owns its whole layout, from its name to its files.

``outputs/<date>/<time>_<id>/`` (sweeps: ``outputs/multirun/...``) holds ``.hydra/``
(Hydra's record of the launch), ``config.yaml`` (resolved config), ``run.json``
(status per stage), ``env.json`` (versions, git commit), ``train.log``, ``tb/<stage>/``
(TensorBoard) and ``checkpoints/<stage>/`` (checkpoints, manifest, the stage's config).
Only one process writes here. No torch import: resume planning reads runs too.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from omegaconf import OmegaConf

from inktrace_train.config.schema import CONFIG_VERSION, Config, to_config
from inktrace_train.errors import ToolError, UserError
from inktrace_train.run.atomic import remove_stale_temps, write_json, write_text

RUNS_ROOT = "outputs"  # new runs go to outputs/<date>/<time>_<id>, relative to the working directory
RUN_ID_ENV = "INKTRACE_RUN_ID"  # set it to make every rank (or a retried job) use one run id
LATEST = "checkpoint_latest.pth"  # refreshed every epoch (and every save_every_n_steps)
BEST = "checkpoint_best.pth"  # the stage's best validation metric so far
MANIFEST = "manifest.json"  # sizes, SHA-256, rotation order: a record, never an input to "best"
PERIODIC = re.compile(r"checkpoint_epoch_(\d+)\.pth$")

PACKAGES = (
    "inktrace_train",
    "torch",
    "numpy",
    "hydra-core",
    "omegaconf",
    "opencv-python-headless",
    "kanjivg",
    "tensorboard",
    "tqdm",
)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@functools.cache
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
        "cwd": os.getcwd(),  # what relative paths in the config (data.path, say) are relative to
        "packages": versions,
        "git": git_state(Path(__file__).resolve().parent),
    }


class RunInUse(UserError):
    """Another live process is training in this run directory."""


class RunLock:
    """Held by the one process that trains in a run directory (``run.lock``, with its pid and
    host). A POSIX record lock (lockf): the kernel drops it when its process dies, so a stale
    lock from a killed run is simply taken over, and unlike flock it is not inherited by the
    data-loader workers a process forks (they can outlive a SIGKILLed parent by seconds). A live
    owner makes a second ``+resume=`` fail at once."""

    def __init__(self, run: RunDir):
        self.path = run.path / "run.lock"
        self.fd: Optional[int] = None

    def __enter__(self) -> RunLock:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only or foreign directory: nothing can be saved there
            raise UserError(
                f"{self.path.parent} is not writable ({e.strerror or e}): a run saves its checkpoints there"
            ) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EAGAIN or EACCES: held by a live process
            owner = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunInUse(
                f"{self.path.parent} is in use by {owner} ({self.path.name}): wait for it to end "
                "or stop it; two processes never train into one run"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {platform.node()} since {now_iso()}\n".encode())
        self.fd = fd
        for directory in (self.path.parent, *self.path.parent.glob("checkpoints/*/")):
            remove_stale_temps(directory)  # the one writer now: temp files here are a killed run's
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock; the file stays (it names the last owner)
            self.fd = None


class RunDirTaken(UserError):
    """A new run was pointed at a directory that holds another run (its files are left alone)."""


def config_to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_to_dict(cfg: Config) -> Dict[str, Any]:
    """Plain dicts, lists and scalars: what a checkpoint stores (weights_only loads it)."""
    return dataclasses.asdict(cfg)


def periodic_name(epoch: int) -> str:
    return f"checkpoint_epoch_{epoch:04d}.pth"


class RunDir:
    """One run's directory: where each file lives, and ``run.json`` (each stage's status)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.status_file = self.path / "run.json"
        self.hydra_dir = self.path / ".hydra"  # Hydra's record of the launch (never rewritten)
        self.overrides_file = self.hydra_dir / "overrides.yaml"  # the launch's command-line overrides
        self.log_file = self.path / "train.log"

    @staticmethod
    def new_path(kind: str = "") -> Path:
        """``outputs/<date>/<time>_<id>`` (``outputs/<kind>/...`` for sweeps). The id makes two runs
        started in the same second differ; ``INKTRACE_RUN_ID`` fixes it (every rank of one job)."""
        now = datetime.now()
        run_id = os.environ.get(RUN_ID_ENV) or secrets.token_hex(3)
        parts = [RUNS_ROOT, kind, now.strftime("%Y-%m-%d"), f"{now.strftime('%H-%M-%S')}_{run_id}"]
        return Path(*[p for p in parts if p])

    @classmethod
    def containing(cls, checkpoint: Path) -> Optional[Tuple[RunDir, str]]:
        """(run, stage) for a file at ``<run>/checkpoints/<stage>/<file>`` of a run; None for a loose file."""
        parents = Path(checkpoint).resolve().parents
        if len(parents) < 3 or parents[1].name != "checkpoints":
            return None
        run = cls(parents[2])
        return (run, parents[0].name) if run.config_file.is_file() else None

    @property
    def run_id(self) -> str:
        return self.path.name

    def checkpoint_dir(self, stage: str) -> Path:
        return self.path / "checkpoints" / stage

    def best_checkpoint(self, stage: str) -> Path:
        return self.checkpoint_dir(stage) / BEST

    def has_checkpoints(self) -> bool:
        return any(self.path.glob("checkpoints/*/*.pth"))

    @property
    def tb_root(self) -> Path:
        return self.path / "tb"

    def tb_dir(self, stage: str) -> Path:
        """One TensorBoard run per stage: a resumed stage's purge of replayed steps
        must not touch the other stage's curves."""
        return self.tb_root / stage

    def init_report(self, stage: str) -> Path:
        return self.path / f"init_report_{stage}.txt"

    def launch_overrides(self) -> List[str]:
        """The command-line overrides the run was launched with: Hydra's record of its first launch,
        or where there is none (a sweep's job first run by the sweep's resume) of its newest
        resume's; [] without either."""
        records = [self.overrides_file, *sorted(self.hydra_dir.glob("resume-*/overrides.yaml"), reverse=True)]
        found = next((path for path in records if path.is_file()), None)
        try:
            return [str(o) for o in OmegaConf.load(found)] if found else []
        except Exception:  # torn by a kill as Hydra wrote it
            return []

    def launch_config_dir(self) -> Optional[str]:
        """The ``--config-dir`` the run was launched with (Hydra's record of its search path), or None."""
        try:
            sources = OmegaConf.load(self.hydra_dir / "hydra.yaml").hydra.runtime.config_sources
        except Exception:  # no record (a run of an older version), or a torn one
            return None
        return next((str(src.path) for src in sources if src.provider == "command-line"), None)

    def stage_config_file(self, stage: str) -> Path:
        return self.checkpoint_dir(stage) / "config.yaml"

    def lock(self) -> RunLock:
        return RunLock(self)

    def run_files(self) -> List[str]:
        """The names present that only a run writes (empty for a new or unrelated directory)."""
        marks = (self.hydra_dir, self.config_file, self.status_file, self.path / "checkpoints")
        return [p.name for p in marks if p.exists()]

    def started(self) -> bool:
        """Whether a run started here: its config.yaml (recorded last, before any training) or a
        checkpoint. Without either, the directory holds a start killed before it was recorded
        (Hydra's ``.hydra/`` and part of ours): starting again there loses nothing."""
        return self.config_file.is_file() or self.has_checkpoints()

    def refuse_if_taken(self) -> None:
        """Raise if this directory already holds a run: a new run never writes into another's."""
        if self.started():
            raise RunDirTaken(
                f"{self.path} already holds a run ({', '.join(self.run_files())}): continue it with "
                f"+resume={self.path}, or start a new run in another directory (hydra.run.dir=PATH)"
            )

    def create(self, cfg: Config, stages: List[Config]) -> None:
        """Record a new run: each stage's config, environment, pending stages, and last the
        resolved config (its presence marks a run that ``+resume=`` can continue)."""
        self.refuse_if_taken()
        self.path.mkdir(parents=True, exist_ok=True)
        for stage_cfg in stages:
            self.save_stage_config(stage_cfg)
        write_json(self.path / "env.json", environment())
        status = {s.stage.name: {"status": "pending"} for s in stages}
        record = {
            "run_id": self.run_id,
            "config_version": CONFIG_VERSION,
            "created": now_iso(),
            "pipeline": list(status),
            "stages": status,
            "resumes": [],
        }
        write_json(self.status_file, record)
        write_text(self.config_file, config_to_yaml(cfg))

    def save_stage_config(self, cfg: Config) -> None:
        """Each stage's own resolved config, beside its checkpoints (resume reads it)."""
        path = self.stage_config_file(cfg.stage.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, config_to_yaml(cfg))

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

    def record_processes(self, layout: Dict[str, Any]) -> None:
        """How the run's processes ran (world size, each rank's device and threads, batch per
        rank), into env.json beside the versions."""
        env_file = self.path / "env.json"
        env = json.loads(env_file.read_text()) if env_file.is_file() else {}
        write_json(env_file, {**env, "processes": layout})

    def record_resume(self, **fields: Any) -> None:
        """Each resume's own record, beside the original one (which is never rewritten)."""
        state = self.status()
        state["resumes"].append({"time": now_iso(), "argv": sys.argv, **fields})
        write_json(self.status_file, state)

    def update_stage(self, stage: str, **fields: Any) -> None:
        state = self.status()
        state["stages"].setdefault(stage, {}).update(fields)
        write_json(self.status_file, state)

    def discard_if_unused(self, before: Optional[Set[str]]) -> bool:
        """After a failed start, remove what it wrote: the directory it made (``before`` None), or
        in a directory that was there (``hydra.run.dir=.``, a folder of the user's own) only the
        entries it added to ``before``. Nothing when a checkpoint was saved, or when a live
        process trains here (a second start into one directory, refused, must not delete the
        first's run before its first checkpoint)."""
        if not self.path.is_dir() or self.has_checkpoints():
            return False
        try:
            with self.lock():
                if before is None:
                    shutil.rmtree(self.path, ignore_errors=True)
                    return True
                for entry in set(os.listdir(self.path)) - before:
                    path = self.path / entry
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        except UserError:  # in use by a live process, or not writable: leave it
            return False
        return True


def best_checkpoint_in(path: Path, stages: Optional[Sequence[str]] = None) -> Optional[Path]:
    """The best checkpoint a directory holds: in a run directory, that of the last of ``stages``
    (default: every stage of its pipeline) that has one; a stage's checkpoint folder's own. None
    when there is none. The one rule by which ``stage.init_from``, ``predict``, ``evaluate`` and
    ``ckpt`` read a directory."""
    run = RunDir(path)
    if stages is None:
        stages = (
            run.status()["pipeline"]
            if run.status_file.is_file()
            else sorted(d.name for d in path.glob("checkpoints/*") if d.is_dir())
        )
    return next((c for c in [run.best_checkpoint(s) for s in reversed(stages)] + [path / BEST] if c.is_file()), None)


def best_checkpoint_of(path: str) -> Path:
    """A checkpoint file as given; a directory as :func:`best_checkpoint_in` reads it. A missing
    path is exit 2; a bad file is exit 1 when it is loaded."""
    p = Path(path)
    if not p.exists():
        raise ToolError(f"no such file or directory: {p}", 2)
    if p.is_file():
        return p
    best = best_checkpoint_in(p)
    if best is None:
        raise ToolError(f"{p} holds no best checkpoint (looked for checkpoints/<stage>/{BEST})", 2)
    return best


def shown_metric(metric: Optional[float]) -> str:
    """A metric as every message shows it: four decimals, or why there is none."""
    return "none (no finite validation metric)" if metric is None else f"{metric:.4f}"


def hydra_quoted(value: str) -> str:
    """``value`` as Hydra's override grammar reads it back: single-quoted (backslash and quote
    escaped) when it holds anything but letters, digits and ``_ . / ~ + -``."""
    if re.fullmatch(r"[\w./~+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def shell_command(*args: str) -> str:
    """A command line to print for the user: quoted so that it pastes back as it is."""
    return shlex.join(args)

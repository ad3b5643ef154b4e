"""``+resume=PATH`` planning, the one place that decides what a resume does: which run, its
stages and the config changes, the stage it continues in (or that it is finished), and the
checkpoint file each stage continues from.

The config comes from the run directory's ``config.yaml`` (or from the checkpoint
when PATH is a loose file). Overrides given with resume are compared with the
stored values: equal ones are accepted silently (so re-running the original
command line with ``+resume=`` works), a short allow-list may change, anything
else is refused. Files are chosen by their manifest and seals (:mod:`run.stagefiles`).
No torch and no Hydra import here: the entry point hands in how to compose a command
line and how to read a loose checkpoint, so a refused resume costs no startup time and
the trainer only carries out the plan.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import OmegaConf

from inktrace_train.config.schema import Config, apply_changes, flatten, override_key
from inktrace_train.errors import ConfigError, UserError
from inktrace_train.run.rundir import LATEST, RunDir, config_to_dict, now_iso
from inktrace_train.run.stagefiles import newest_valid, read_manifest

log = logging.getLogger(__name__)

# May change on resume. Exactness (bit-identical to an uninterrupted run) holds without changes;
# extending training.epochs continues the cosine from the resume point to the new horizon.
ALLOWED_CHANGES = (
    "training.epochs",
    "data.num_workers",
    "training.device",
    "training.log_every_n_steps",
    "training.auto_resume",
    "training.compile",
    "training.channels_last",
    "data.hanzi_dir",  # the brush data moved (same package, another path)
    "data.path",  # your stroke files moved (keys are relative to it: the split stays)
    "data.extra_path",  # likewise
    "data.renderer",  # the renderers' targets agree within the tolerances of tests/test_device_render.py
)

Compose = Callable[[List[str]], Dict[str, Any]]  # overrides -> the composed config, plain containers
# A loose checkpoint file -> (its stored config, its completed epochs); reading it needs torch.
ReadCheckpoint = Callable[[Path], Tuple[Optional[Dict[str, Any]], Optional[int]]]


@dataclass
class ResumePlan:
    run: Optional[RunDir]  # where training continues; None: a loose checkpoint file, run in a new directory
    config: Config  # the stored config with the allowed changes applied
    stages: List[Config]  # every stage of the run, with the changes applied
    start: Optional[str]  # the stage training continues in; None: every stage is done
    checkpoints: Dict[str, Path] = field(default_factory=dict)  # stage -> the file it continues from
    changes: Dict[str, Any] = field(default_factory=dict)  # key -> new value
    overrides: List[str] = field(default_factory=list)  # the command line, for the record
    new_dir: Optional[Path] = None  # a loose file's new run directory (hydra.run.dir); None: a dated one

    @property
    def checkpoint(self) -> Optional[Path]:
        """The file the first stage that runs continues from; None: it starts over."""
        return self.checkpoints.get(self.start) if self.start else None

    @property
    def best_metric(self) -> Optional[float]:
        """The last stage's best metric, as run.json has it (a finished run's result)."""
        if self.run is None:
            return None
        return self.run.status()["stages"].get(self.stages[-1].stage.name, {}).get("best_metric")


def is_finished(status: Dict[str, Any], cfg: Config) -> bool:
    """Done, and not reopened by a resume that extended ``training.epochs``."""
    return status.get("status") == "done" and status.get("epochs", 0) >= cfg.training.epochs


def requested_changes(overrides: List[str], compose: Compose) -> Dict[str, Any]:
    """Every key the overrides set, with its value: keys that differ from the plain
    composition, plus keys named directly (which may happen to equal a default)."""
    if not overrides:
        return {}
    with_overrides, plain = flatten(compose(overrides)), flatten(compose([]))
    named = {override_key(o) for o in overrides}
    return {k: v for k, v in with_overrides.items() if v != plain.get(k) or k in named}


def recorded_changes(run: RunDir) -> Dict[str, Any]:
    """The changes that earlier resumes of ``run`` made (run.json's records; later ones win)."""
    resumes = json.loads(run.status_file.read_text()).get("resumes", []) if run.status_file.is_file() else []
    return {k: v for record in resumes for k, v in record.get("changes", {}).items()}


def run_config(run: RunDir) -> Dict[str, Any]:
    """The run's config.yaml with the changes that earlier resumes made."""
    return config_to_dict(apply_changes(OmegaConf.load(run.config_file), recorded_changes(run)))


def locate(path: Path) -> Tuple[Optional[RunDir], Optional[Path]]:
    """(run, explicit checkpoint) for a resume PATH: a run directory, a checkpoint file in
    one, or a loose checkpoint file (run None). Any other directory is refused in one line that
    says what to pass instead."""
    if not path.exists():
        raise ConfigError(f"resume: no such file or directory: {path}")
    if path.is_dir():
        run = RunDir(path)
        if path.parent.name == "checkpoints" and RunDir(path.parent.parent).config_file.is_file():
            raise ConfigError(
                f"resume: {path} is the checkpoint folder of stage {path.name}: resume its run with "
                f"+resume={path.parent.parent}, or one file with +resume={path / 'checkpoint_latest.pth'}"
            )
        if not run.config_file.is_file() or not run.status_file.is_file():
            raise ConfigError(not_a_run(path))
        return run, None
    found = RunDir.containing(path)
    return (found[0] if found else None), path


def is_sweep(path: Path) -> bool:
    return (path / "multirun.yaml").is_file()


def not_a_run(path: Path) -> str:
    """Why ``path`` cannot be resumed, and the runs or sweeps below it that can."""
    below = sorted(
        p
        for pattern in ("*", "*/*", "*/*/*")  # outputs/<date>/<run>, outputs/multirun/<date>/<sweep>
        for p in path.glob(pattern)
        if p.is_dir() and (is_sweep(p) or (RunDir(p).status_file.is_file() and not is_sweep(p.parent)))
    )
    if not below:
        return f"resume: {path} is not a run directory (it has no config.yaml and run.json), and holds none"
    kinds = ["sweep" if is_sweep(p) else "run" for p in below]
    what = " and ".join(
        f"{kinds.count(k)} {k}{'s' if kinds.count(k) > 1 else ''}" for k in ("run", "sweep") if k in kinds
    )
    shown = ", ".join(str(p) for p in below[:4]) + (", ..." if len(below) > 4 else "")
    return f"resume: {path} is not a run: it holds {what}; resume one of them with +resume=PATH ({shown})"


def check_sweep_resume(sweep: Path, overrides: List[str], compose: Compose) -> None:
    """Refuse, before any job runs, a change that resume refuses in a started job of ``sweep``
    (``overrides``: the resume's own, each of one value). Hydra writes the command line into the
    sweep's multirun.yaml as it starts, so a refused change would otherwise replace the sweep's
    own record, while every job refused it.

    Raises:
        ConfigError: the first job (in order) that refuses, naming the key and what is allowed.
    """
    requested = requested_changes(overrides, compose)
    if not requested:
        return
    for job in sorted(
        (p for p in sweep.iterdir() if RunDir(p).config_file.is_file()), key=lambda p: (len(p.name), p.name)
    ):
        flat = flatten(run_config(RunDir(job)))
        _check_changes({k: v for k, v in requested.items() if flat.get(k) != v}, flat, str(job))


LAUNCH_KEYS = ("hydra/launcher", "hydra.launcher.", "hydra/sweeper", "hydra.sweeper.")  # where a sweep's jobs ran


def check_job_settings(job: Path, overrides: List[str], compose: Compose) -> None:
    """A sweep's job resumed with the sweep's command: refuse, naming the key, when the settings
    the sweep gives it now (``overrides``: a re-proposed Optuna trial, say) differ from those it
    trained with, in any key a resume may not change (those a resume may change are the
    resume's own business: the original command's training.epochs=1 must not cut an extended
    job back)."""
    flat = flatten(run_config(RunDir(job)))
    requested = requested_changes(overrides, compose)
    _check_changes(
        {k: v for k, v in requested.items() if flat.get(k) != v and k not in ALLOWED_CHANGES}, flat, str(job)
    )


def sweep_command(sweep: Path, overrides: List[str]) -> List[str]:
    """``+resume=SWEEP`` without ``-m``: the sweep's own overrides again (from its multirun.yaml),
    its launcher and sweeper among them (a Slurm sweep resumes on Slurm, not on this machine),
    with the ones given now taking their place."""
    try:
        recorded = OmegaConf.load(sweep / "multirun.yaml").hydra.overrides
        launch = [str(o) for o in recorded.hydra if override_key(str(o)).startswith(LAUNCH_KEYS)]
        task = [*launch, *(str(o) for o in recorded.task)]
    except Exception:  # torn by a kill, or edited by hand
        raise ConfigError(
            f"resume: {sweep / 'multirun.yaml'} is unreadable: re-run the sweep's command with +resume={sweep}"
        ) from None
    given = {override_key(o) for o in overrides}
    return [o for o in task if override_key(o) not in given] + overrides


def _check_changes(changes: Dict[str, Any], stored: Dict[str, Any], path_text: str) -> None:
    refused = sorted(k for k in changes if k not in ALLOWED_CHANGES)
    if "stage.name" in refused:
        raise ConfigError(
            f"resume continues the run's own stage ({stored.get('stage.name')}); to start "
            f"{changes['stage.name']} from its weights, use stage={changes['stage.name']} "
            f"stage.init_from={path_text} (init_from takes weights, resume takes everything)"
        )
    if refused:
        shown = ", ".join(f"{k} ({stored.get(k)!r} -> {changes[k]!r})" for k in refused)
        raise ConfigError(
            f"resume cannot change {shown}; allowed: {', '.join(ALLOWED_CHANGES)}. "
            "To train with other settings from these weights, start a new run with "
            f"stage.init_from={path_text}"
        )


def plan(path_text: str, overrides: List[str], compose: Compose, read_checkpoint: ReadCheckpoint) -> ResumePlan:
    """Check a resume request and decide everything it does.

    Args:
        compose: composes a command line into the full config (Hydra, in the entry point).
        read_checkpoint: a loose checkpoint file's config and epochs (loads it: needs torch).

    Raises:
        ConfigError: missing path, not a run, or an override outside the allow-list.
        CheckpointError: a stage has checkpoint files, but none of them is valid.
    """
    run, explicit = locate(Path(path_text).expanduser())
    new_dir = next(
        (Path(o.partition("=")[2].strip("'\"")) for o in overrides if override_key(o) == "hydra.run.dir" and "=" in o),
        None,
    )
    if run is not None and new_dir is not None:
        log.warning("hydra.run.dir=%s is not used: a run resumes in its own directory, %s", new_dir, run.path)
    loose_epochs = None
    if run:
        stored = run_config(run)
    else:
        config_read, loose_epochs = read_checkpoint(explicit)
        stored = config_read or {}
    if set(flatten(stored)) != set(flatten(compose([]))):
        # An older checkpoint without a (complete) config: the command line fills the rest.
        base = compose(overrides)
        missing = sorted(set(flatten(base)) - set(flatten(stored)))
        log.warning(
            "resume: %s has no config for %s; taken from the command line and defaults",
            path_text,
            ", ".join(missing) if len(missing) < 8 else f"{len(missing)} keys",
        )
        stored = OmegaConf.to_container(OmegaConf.merge(base, stored))
    flat = flatten(stored)
    changes = {k: v for k, v in requested_changes(overrides, compose).items() if flat.get(k) != v}
    _check_changes(changes, flat, path_text)
    config = apply_changes(stored, {**changes, "resume": None})
    found = dict(run=run, config=config, changes=changes, overrides=overrides)
    if run is None:  # a loose file: its own stage, continued in a new run directory
        done = (loose_epochs or 0) >= config.training.epochs
        start = None if done else config.stage.name
        return ResumePlan(
            **found, stages=[config], start=start, checkpoints={config.stage.name: explicit}, new_dir=new_dir
        )
    # Each stage as it was saved, with every resume's changes since: a run extended to more
    # epochs and stopped again continues to them with +resume= alone.
    stages = [apply_changes(c, {**recorded_changes(run), **changes}) for c in run.stage_configs()]
    check_relative_paths(run, flatten(config_to_dict(config)))
    statuses = run.status()["stages"]
    if explicit is not None:
        start = RunDir.containing(explicit)[1]
        checkpoints = {start: explicit}
    else:
        start = next((c.stage.name for c in stages if not is_finished(statuses.get(c.stage.name, {}), c)), None)
        names = [c.stage.name for c in stages]
        later = names[names.index(start) :] if start else []
        checkpoints = {name: file for name in later if (file := newest_valid(run.checkpoint_dir(name)))}
    last = stages[-1]
    if start == last.stage.name and _epochs_of(checkpoints.get(start)) >= last.training.epochs:
        start = None  # its final checkpoint is written; only run.json missed the end
    return ResumePlan(**found, stages=stages, start=start, checkpoints=checkpoints)


RELATIVE_KEYS = ("data.path", "data.extra_path", "data.hanzi_dir")  # files a run reads on every start


def check_relative_paths(run: RunDir, flat: Dict[str, Any]) -> None:
    """Refuse, naming the key and the fix, a relative path of the config that is not there from
    this folder but is from the folder the run was started in (env.json's ``cwd``)."""
    try:
        started = json.loads((run.path / "env.json").read_text()).get("cwd")
    except (OSError, ValueError, AttributeError):
        return  # a run from before env.json recorded its folder
    if not started or Path(started) == Path.cwd():
        return
    for key in RELATIVE_KEYS:
        value = flat.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            there = Path(started) / value
            if not Path(value).exists() and there.exists():
                raise ConfigError(
                    f"resume: {key}={value} is relative to {started}, where this run was started: resume from "
                    f"there, or give {key}={there}"
                )


def record_finished(plan: ResumePlan) -> None:
    """A run whose last checkpoint was written but whose run.json missed the end (a kill just
    after the final save): record each stage not marked done as done, from its manifest, so the
    run reads as finished everywhere (report, the sweep summary, the next resume)."""
    if plan.run is None or plan.start is not None:
        return
    statuses = plan.run.status()["stages"]
    if all(statuses.get(cfg.stage.name, {}).get("status") == "done" for cfg in plan.stages):
        return  # the usual case: nothing to record, nothing written
    try:
        with plan.run.lock():  # one writer of run.json: a live process may be finishing it now
            _record_finished(plan)
    except UserError:  # in use, or not writable: its owner records the end
        return


def _record_finished(plan: ResumePlan) -> None:
    statuses = plan.run.status()["stages"]
    for cfg in plan.stages:
        name = cfg.stage.name
        if statuses.get(name, {}).get("status") == "done":
            continue
        manifest = read_manifest(plan.run.checkpoint_dir(name))
        best = plan.run.best_checkpoint(name)
        plan.run.update_stage(
            name,
            status="done",
            ended=now_iso(),
            best_metric=manifest.get("best_metric"),
            epochs=_epochs_of(plan.run.checkpoint_dir(name) / LATEST),
            best_checkpoint=str(best.relative_to(plan.run.path)) if best.is_file() else None,
        )
        log.info("%s: stage %s had saved its last epoch; recorded as done", plan.run.path, name)


def _epochs_of(path: Optional[Path]) -> int:
    """A checkpoint file's completed epochs, per its stage's manifest (0 when it is not there)."""
    if path is None:
        return 0
    entry = read_manifest(path.parent)["files"].get(path.name) or {}
    return entry.get("epoch") or 0

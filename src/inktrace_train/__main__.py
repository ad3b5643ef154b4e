"""Entry point: ``python -m inktrace_train [GROUP=OPTION]... [KEY=VALUE]...``.

All command-line handling lives here: Hydra's own options, ``+resume=PATH`` (which
skips composition: the run's own config.yaml is the config; with ``-m`` it re-runs a
sweep into its own directory, skipping finished jobs), and the checks that run before
Hydra composes. Typed Configs go on to :mod:`inktrace_train.train.pipeline`, imported (with
torch) only once the command line is valid.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import logging
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Tuple

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from inktrace_train.config.schema import override_key, to_config
from inktrace_train.config.unused import unused_keys
from inktrace_train.errors import RunFailed, UserError, fail
from inktrace_train.launch import resume
from inktrace_train.launch.compose import (
    BEFORE_START,
    check_creatable,
    check_overrides,
    compose_plain,
    compose_stages,
    config_dir,
    register,
    single_valued,
)
from inktrace_train.run.ranks import Ranks
from inktrace_train.run.rundir import RunDir, RunDirTaken, RunInUse, now_iso, shell_command, shown_metric
from inktrace_train.run.signals import INTERRUPTED_EXIT, Preempted

register()
log = logging.getLogger("inktrace_train")
RESUME_KEYS = ("resume", "+resume", "++resume")


@dataclass
class SweepState:
    """This process's sweep, if any (Hydra calls the job function once per job)."""

    refused: List[str] = field(default_factory=list)  # done jobs left as they were: why
    jobs: int = 0  # jobs run by this process
    failed: int = 0  # of which failed


SWEEP = SweepState()


# --- the command line ------------------------------------------------------------------
def split_resume(overrides: List[str]) -> Tuple[Optional[str], List[str]]:
    """The resume path given on the command line (if any) and the other overrides."""
    path, rest = None, []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in RESUME_KEYS:
            path = value.strip("'\"")
        else:
            rest.append(o)
    return path, rest


def command_line(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """Hydra's reading of the command line, with ``resume`` (the path or None) split off the
    overrides; and the argv reordered options-first, since Hydra's parser refuses overrides on
    both sides of an option (``a=1 --cfg job b=2``)."""
    from hydra._internal.utils import get_args_parser

    try:
        args = get_args_parser().parse_intermixed_args(argv)
    except SystemExit as e:  # argparse printed its own message and usage
        raise SystemExit(2 if e.code else 0) from None
    overrides = list(args.overrides)
    options, pending = [], list(overrides)
    for token in argv:
        if pending and token == pending[0]:
            pending.pop(0)
        else:
            options.append(token)
    args.resume, args.overrides = split_resume(overrides)
    return args, options + overrides


def other_rank_argv(argv: List[str]) -> List[str]:
    """A data-parallel rank other than the main one composes and validates the same config but
    writes nothing: Hydra gets a throw-away directory (the run's own comes from the main rank),
    no ``.hydra`` record and console-only logging."""
    scratch = tempfile.mkdtemp(prefix="inktrace_rank_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return argv + [f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=stdout"]


def sweep_resume_argv(argv: List[str], sweep_dir: str, keys: List[str]) -> List[str]:
    """The sweep's command line again, into its own directory, without touching the jobs'
    original .hydra records. ``keys``: those the resume changes in every job (training.epochs to
    extend); they travel in Hydra's own config, which every launcher hands its jobs."""
    if not (Path(sweep_dir) / "multirun.yaml").is_file():
        raise UserError(f"resume with -m: {sweep_dir} is not a sweep directory (it has no multirun.yaml)")
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    kept = [a for a in argv if a.split("=", 1)[0] not in RESUME_KEYS]
    return kept + [
        f'hydra.sweep.dir="{sweep_dir}"',
        f"hydra.output_subdir=.hydra/resume-{stamp}",
        "hydra.callbacks.validate.sweep_resume=true",
        f"hydra.callbacks.validate.resume_keys=[{','.join(keys)}]",
    ]


def unstarted_argv(path: Path, overrides: List[str]) -> Optional[List[str]]:
    """``+resume=`` of a run stopped before it recorded its config (only Hydra's ``.hydra/`` record
    is there, no config.yaml, no checkpoint): that launch's command line again, into the same
    directory. None for anything else."""
    run = RunDir(path)
    if not path.is_dir() or run.started() or not run.hydra_dir.is_dir():
        return None
    try:
        task = list(OmegaConf.load(run.overrides_file))
        launch = list(OmegaConf.load(run.hydra_dir / "hydra.yaml").hydra.overrides.hydra)
    except Exception:  # a kill while Hydra wrote these files: they may be torn
        raise UserError(
            f"resume: {path} holds no run (it was stopped before recording its config, and "
            f"{run.hydra_dir} is unreadable): start it again with its original command"
        ) from None
    print(f"inktrace_train: {path} was stopped before its run was recorded; starting it again", file=sys.stderr)
    kept = [o for o in launch if o.split("=", 1)[0] != "hydra.run.dir"]
    return [*kept, *task, *overrides, f"hydra.run.dir={path}"]


# --- what each command runs ------------------------------------------------------------
def _train(cfg: DictConfig, run_dir: Path) -> Optional[float]:
    config = to_config(cfg)  # multirun jobs are validated here, one by one
    if config.training.auto_resume and RunDir(run_dir).config_file.is_file():  # e.g. a requeued job
        log.warning("training.auto_resume: %s holds this run already; resuming it", run_dir)
        return _resume(str(run_dir), list(HydraConfig.get().overrides.task))
    for message in unused_keys(config, HydraConfig.get().overrides.task):
        log.warning(message)
    stages = compose_stages(config, list(HydraConfig.get().overrides.task))  # all validated before training
    _start_event_writer()
    from inktrace_train.train.pipeline import train  # torch is imported only past validation

    return train(config, stages, run_dir)


def _start_event_writer() -> None:
    """On the rank that logs, the TensorBoard writer process starts now, so that its start-up
    (it imports torch) overlaps this process's own."""
    if Ranks.from_env().is_main:
        from inktrace_train.train.eventwriter import shared_process

        shared_process()


def _read_checkpoint(path: Path) -> Tuple[Optional[Dict[str, Any]], Optional[int]]:
    """A loose checkpoint file's own config and completed epochs (reading it imports torch)."""
    from inktrace_train.checkpoint.store import load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt.config, ckpt.epoch


def _resume(
    path: str, overrides: List[str], compose: resume.Compose = compose_plain, alone: bool = False
) -> Optional[float]:
    """Resume the run or checkpoint at ``path``; ``compose`` composes the command's overrides
    (the user's ``--config-dir`` included) for resume to compare with the stored config.
    ``alone``: named on the command line, not resumed by its sweep (which keeps its jobs' records)."""
    plan = resume.plan(path, overrides, compose=compose, read_checkpoint=_read_checkpoint)
    if plan.new_dir is not None and plan.start is not None:
        check_creatable(plan.new_dir, "hydra.run.dir")
    if plan.start is None:
        if Ranks.from_env().is_main:
            resume.record_finished(plan)
        where = plan.run.path if plan.run else path
        shown = shown_metric(plan.best_metric)
        longer = shell_command("python", "-m", "inktrace_train", f"+resume={where}", "training.epochs=N")
        print(
            f"{where} is already finished (every stage done, best metric {shown}): nothing to resume; "
            f"to train longer: {longer}"
        )
        return plan.best_metric
    _start_event_writer()
    from inktrace_train.launch.sweeps import read_job_record
    from inktrace_train.train.pipeline import resume_run

    record = read_job_record(plan.run.path) if alone and plan.run is not None else None
    if record is not None:  # a sweep's job
        with _recording_job(plan.run.path, record, [o for o in overrides if override_key(o) in plan.changes]):
            return resume_run(plan)
    return resume_run(plan)


@contextlib.contextmanager
def _recording_job(job_dir: Path, record: Dict[str, Any], changed: List[str]) -> Iterator[None]:
    """A sweep's job resumed as a run of its own: its job.json (``record``) and the sweep's summary
    follow what it trains (``changed``: the overrides the resume changed), as the sweep's own
    resume writes them."""
    from inktrace_train.launch.sweeps import run_result

    start, error, in_use = time.time(), None, False
    keys = {override_key(o) for o in changed}
    record.update(overrides=[o for o in record["overrides"] if override_key(o) not in keys] + changed)
    record.update(started=now_iso())
    try:
        yield
    except RunInUse:  # another process trains this job: its record is that process's to write
        in_use = True
        raise
    except Preempted as e:
        error = str(e)
        raise
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:  # Ctrl-C too: run.json says where each stage stands
        if not in_use:
            record.update(run_result(job_dir), error=error)
            _write_job_record(job_dir, record, start)


def _sweep_job(cfg: DictConfig, run_dir: Path) -> float:
    """One job of a sweep: a failure is recorded (job.json, summary) and does not stop the others.
    Resuming a sweep skips done jobs and resumes started ones."""
    from inktrace_train.launch.sweeps import read_job_record, run_result

    hc, start = HydraConfig.get(), time.time()
    validate = hc.callbacks.validate  # what the entry point told every job (see sweep_resume_argv)
    # This job's values of the keys the resume changes (as its command line resolved them).
    named = set(validate.get("resume_keys") or [])  # absent in a job queued by an older version
    changes = [o for o in hc.overrides.task if override_key(o) in named]
    previous = read_job_record(run_dir) if validate.get("sweep_resume") else None
    if previous and previous.get("status") == "done" and not _more_to_do(run_dir, changes, hc.job.num):
        metric = previous.get("metric")
        log.info("job %s is done (metric %s): skipped", hc.job.num, "none" if metric is None else f"{metric:.4f}")
        launch = run_dir / str(hc.output_subdir)  # Hydra's record of this launch, which did nothing here
        if launch.parent == RunDir(run_dir).hydra_dir and launch.name.startswith("resume-"):
            shutil.rmtree(launch, ignore_errors=True)
        return math.nan if metric is None else metric
    SWEEP.jobs += 1
    record = {"job": hc.job.num, "overrides": list(hc.overrides.task), "started": now_iso()}
    try:
        if RunDir(run_dir).config_file.is_file():  # +resume= of the sweep, or a job requeued by submitit
            # Its settings now against those it trained with: a re-proposed Optuna trial that
            # differs is refused, not trained on with the old values.
            resume.check_job_settings(run_dir, list(hc.overrides.task), compose_plain)
            _resume(str(run_dir), changes)
        else:
            _train(cfg, run_dir)
        record.update({**run_result(run_dir), "status": "done", "error": None})
    except Preempted as e:  # saved at a signal's request: record it, let submitit requeue, stop the sweep
        status = "interrupted" if e.signal_name == "SIGINT" else "preempted"  # as the run's run.json says
        record.update(status=status, metric=None, best_checkpoint=None, error=str(e))
        _write_job_record(run_dir, record, start)
        from inktrace_train.train.pipeline import STOP

        STOP.forward()
        stopped(e, run_dir.parent)
    except KeyboardInterrupt:  # Ctrl-C before training started, or a second one: no traceback from the sweeper
        record.update(status="interrupted", metric=None, best_checkpoint=None, error="KeyboardInterrupt")
        _write_job_record(run_dir, record, start)
        interrupted(run_dir.parent)
    except Exception as e:
        record.update(status="failed", metric=None, best_checkpoint=None, error=f"{type(e).__name__}: {e}")
        log.error("job %s failed: %s", hc.job.num, record["error"])
        SWEEP.failed += 1
    _write_job_record(run_dir, record, start)
    return math.nan if record["metric"] is None else record["metric"]  # Optuna: nan marks a failed trial


def _more_to_do(run_dir: Path, changes: List[str], job: int) -> bool:
    """Whether a done job resumes with ``changes`` (more epochs); a change resume refuses is
    reported and counted as a failure, and the job's record is left as it is."""
    if not changes:
        return False
    try:
        return (
            resume.plan(str(run_dir), changes, compose=compose_plain, read_checkpoint=_read_checkpoint).start
            is not None
        )
    except UserError as e:
        SWEEP.refused.append(f"job {job}: {e}")
        log.error(SWEEP.refused[-1])
        SWEEP.jobs += 1
        SWEEP.failed += 1
        return False


def _write_job_record(run_dir: Path, record: Dict[str, Any], start: float) -> None:
    """job.json and the sweep's summary, by the job's main process (a multi-task Slurm job runs
    this function in every task)."""
    from inktrace_train.launch.sweeps import write_job_record, write_summary

    if Ranks.from_env().is_main:
        record.update(ended=now_iso(), wall_time_s=round(time.time() - start, 1))
        write_job_record(run_dir, record)
        write_summary(run_dir.parent)


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> Optional[float]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return _sweep_job(cfg, run_dir)
    return _reporting(run_dir, lambda: _train(cfg, run_dir), new_run=True)


def _reporting(run_dir: Path, action: Callable[[], Optional[float]], new_run: bool) -> Optional[float]:
    """Run ``action`` (training in ``run_dir``): every way it can end is one line and an exit status."""
    try:
        return action()
    except RunFailed as e:  # it ran: keep what it wrote
        fail(str(e), code=1)
    except UserError as e:
        started = Path(run_dir).resolve()  # a failed start (what it wrote); never another run's directory
        if new_run and not isinstance(e, (RunDirTaken, RunInUse)) and started in BEFORE_START:
            RunDir(run_dir).discard_if_unused(BEFORE_START[started])
        fail(str(e))
    except Preempted as e:
        stopped(e, run_dir)
    except KeyboardInterrupt:
        interrupted(run_dir)


def interrupted(path: Path) -> NoReturn:
    """A second Ctrl-C (or one before training started): no traceback; where the run stands."""
    run = RunDir(path)
    if any(run.path.glob("checkpoints/*/*.pth")) or any(run.path.glob("*/checkpoints/*/*.pth")):  # a run, or a sweep
        where = f"{path} keeps its newest checkpoint. Continue with: {resume_command(path)}"
    else:
        where = f"{path} holds no checkpoint yet. Start it again with: {resume_command(path)}"
    print(f"inktrace_train: interrupted (Ctrl-C); {where}", file=sys.stderr)
    raise SystemExit(INTERRUPTED_EXIT)


def stopped(e: Preempted, path: Path) -> NoReturn:
    """A run stopped by SIGTERM/SIGUSR1/Ctrl-C after saving: say where, and how to continue (the
    main rank: another rank's Hydra directory is a temporary one, gone when it exits)."""
    if Ranks.from_env().is_main:
        print(f"inktrace_train: {e}. Continue with: {resume_command(path)}", file=sys.stderr)
    raise SystemExit(e.exit_status)


def resume_command(path: Path) -> str:
    """The command that continues the run in ``path``, quoted to paste back as it is."""
    return shell_command("python", "-m", "inktrace_train", f"+resume={path}")


def main() -> None:
    try:
        args, argv = command_line(sys.argv[1:])
        check_overrides(args.overrides, [args.config_dir] if args.config_dir else [], args.multirun)
        if args.multirun and (args.cfg or args.info):
            raise UserError("--cfg and --info print one composed config: drop -m/--multirun to use them")
        restart = args.resume and not args.multirun and unstarted_argv(Path(args.resume), args.overrides)
        if restart:
            argv = restart
        elif args.resume is not None and not (args.help or args.cfg or args.info):
            sweep = resume.is_sweep(Path(args.resume))
            compose = functools.partial(compose_plain, extra_dirs=[args.config_dir] if args.config_dir else [])
            if not (args.multirun or sweep):
                alone = functools.partial(_resume, args.resume, args.overrides, compose, alone=True)
                _reporting(Path(args.resume), alone, new_run=False)
                return
            changed: List[str] = []  # with -m the sweep's whole command is given again: no change
            if not args.multirun:  # the sweep named alone: its own command line again, as a sweep
                changed = single_valued(args.overrides)
                resume.check_sweep_resume(Path(args.resume), changed, compose)
                argv = ["--multirun", *(a for a in argv if a not in args.overrides)]
                argv += resume.sweep_command(Path(args.resume), args.overrides)
            argv = sweep_resume_argv(argv, args.resume, [override_key(o) for o in changed])
        if not Ranks.from_env().is_main and not args.multirun:
            argv = other_rank_argv(argv)
        sys.argv = [sys.argv[0], *argv]
    except UserError as e:
        fail(str(e))
    try:
        _hydra_main()
    except KeyboardInterrupt:  # Ctrl-C between a sweep's jobs (in the sweeper's own code): no traceback
        print("inktrace_train: interrupted (Ctrl-C) between sweep jobs; each job keeps what it saved", file=sys.stderr)
        raise SystemExit(INTERRUPTED_EXIT) from None
    if SWEEP.failed:
        why = SWEEP.refused[0] if SWEEP.refused else "their errors are in the sweep's summary.md"
        fail(f"{SWEEP.failed} of {SWEEP.jobs} sweep jobs failed; {why}", code=1)


if __name__ == "__main__":
    main()

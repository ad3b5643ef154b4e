"""Entry point: ``python -m inktrace_train [GROUP=OPTION]... [KEY=VALUE]...``.

Thin on purpose: check the command line, let Hydra compose and make the run
directory, then hand typed Configs to :mod:`inktrace_train.app`. ``+resume=PATH``
skips composition (the run's own config.yaml is the config); with ``-m`` it
re-runs a sweep into its own directory, skipping finished jobs.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from inktrace_train.compose import (check_overrides, command_line, compose_stages, config_dir, fail, register,
                                    to_config)
from inktrace_train.config import UserError
from inktrace_train.runs import discard_unused, now_iso

register()
log = logging.getLogger("inktrace_train")
SWEEP = {"resume": False, "failed": 0, "jobs": 0}  # state of this process's sweep, if any


def _train(cfg: DictConfig, run_dir: Path) -> Optional[float]:
    config = to_config(cfg)  # multirun jobs are validated here, one by one
    stages = compose_stages(config, list(HydraConfig.get().overrides.task))  # all validated before training
    from inktrace_train.app import train  # torch is imported only past validation

    return train(config, stages, run_dir)


def _sweep_job(cfg: DictConfig, run_dir: Path) -> float:
    """One job of a sweep: a failure is recorded (job.json, summary) and does not stop the others.
    Resuming a sweep skips done jobs and resumes started ones."""
    from inktrace_train.sweeps import read_job_record, run_result, write_job_record, write_summary

    hc, start = HydraConfig.get(), time.time()
    previous = read_job_record(run_dir) if SWEEP["resume"] else None
    if previous and previous["status"] == "done":
        log.info("job %s is done (metric %s): skipped", hc.job.num, previous["metric"])
        return math.nan if previous["metric"] is None else previous["metric"]
    SWEEP["jobs"] += 1
    record = {"job": hc.job.num, "overrides": list(hc.overrides.task), "started": now_iso()}
    try:
        if SWEEP["resume"] and any(run_dir.glob("checkpoints/*/*.pth")):
            _resume(str(run_dir), [])
        else:
            _train(cfg, run_dir)
        record.update(status="done", error=None, **run_result(run_dir))
    except Exception as e:  # noqa: BLE001 - any failure of one job is recorded in its row
        record.update(status="failed", metric=None, best_checkpoint=None, error=f"{type(e).__name__}: {e}")
        log.error("job %s failed: %s", hc.job.num, record["error"])
        SWEEP["failed"] += 1
    record.update(ended=now_iso(), wall_time_s=round(time.time() - start, 1))
    write_job_record(run_dir, record)
    write_summary(run_dir.parent)
    return math.nan if record["metric"] is None else record["metric"]  # Optuna: nan marks a failed trial


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> Optional[float]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return _sweep_job(cfg, run_dir)
    try:
        return _train(cfg, run_dir)
    except UserError as e:
        discard_unused(run_dir)
        fail(str(e))


def _resume(path: str, overrides: List[str]) -> Optional[float]:
    from inktrace_train import resume

    plan = resume.plan(path, overrides)
    from inktrace_train.app import resume as resume_run

    return resume_run(plan)


def _sweep_resume_argv(argv: List[str], sweep_dir: str) -> List[str]:
    """The sweep's command line again, into its own directory, without touching the jobs'
    original .hydra records."""
    if not (Path(sweep_dir) / "multirun.yaml").is_file():
        raise UserError(f"resume with -m: {sweep_dir} is not a sweep directory (it has no multirun.yaml)")
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    kept = [a for a in argv if a.lstrip("+").split("=", 1)[0] != "resume"]
    return kept + [f'hydra.sweep.dir="{sweep_dir}"', f"hydra.output_subdir=.hydra/resume-{stamp}"]


def main() -> None:
    argv = sys.argv[1:]
    try:
        check_overrides(argv)
        args = command_line(argv)
        if args.multirun and (args.cfg or args.info):
            raise UserError("--cfg and --info print one composed config: drop -m/--multirun to use them")
        if args.resume is not None and not (args.help or args.cfg or args.info):
            if not (args.multirun or (Path(args.resume) / "multirun.yaml").is_file()):
                _resume(args.resume, args.overrides)
                return
            SWEEP["resume"] = True
            sys.argv = [sys.argv[0], *_sweep_resume_argv(argv, args.resume)]
    except UserError as e:
        fail(str(e))
    _hydra_main()
    if SWEEP["failed"]:
        fail(f"{SWEEP['failed']} of {SWEEP['jobs']} sweep jobs failed; their errors are in the sweep's summary.md",
             code=1)


if __name__ == "__main__":
    main()

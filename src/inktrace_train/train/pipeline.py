"""Run a new run, continue one, and every stage of a pipeline in order.

``train`` starts a run in the directory Hydra made; ``resume_run`` carries out a resume plan
(:mod:`inktrace_train.launch.resume` decides, with no torch, where and from which files). Both
are one :func:`session`: this process joins its data-parallel job once, holds the run's lock,
and runs each unfinished stage with :func:`run_stage` (a later stage starts from the previous
stage's best checkpoint).
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from inktrace_train.checkpoint.store import Checkpoint, load_checkpoint
from inktrace_train.config.schema import Config, flatten, override_key
from inktrace_train.launch.resume import ResumePlan, is_finished
from inktrace_train.run.rundir import RunDir, config_to_dict, hydra_quoted, now_iso, shell_command, shown_metric
from inktrace_train.run.signals import Preempted, StopRequest
from inktrace_train.train.build import build_trainer
from inktrace_train.train.distributed import Distributed

log = logging.getLogger(__name__)
STOP = StopRequest()  # SIGTERM/SIGUSR1 ask this process to save and stop (signals are per process)

# Opens the session's run (the main rank creates or records it) and loads the checkpoint the
# first stage continues from: (run, that checkpoint or None).
Opener = Callable[[Distributed, ExitStack], Tuple[RunDir, Optional[Checkpoint]]]


def session(
    cfg: Config,
    stages: List[Config],
    open_run: Opener,
    start: Optional[str] = None,
    checkpoints: Optional[Dict[str, Path]] = None,
) -> Optional[float]:
    """Everything a training process does, new run or resume: join the job (once), open the
    run, train its stages from ``start`` (each continuing from its file in ``checkpoints``),
    and sum it up. Returns the best validation metric of the last stage.

    Under torchrun every rank trains; only the main rank writes into the run directory.
    """
    torch.set_flush_denormal(True)  # denormals make CPU steps ~20x slower
    STOP.install()
    dist = Distributed.setup(cfg.training.device)
    try:
        with ExitStack() as held:
            run, checkpoint = open_run(dist, held)
            best = run_pipeline(run, stages, dist, start, checkpoint, checkpoints or {})
            if dist.is_main:
                log_summary(run, stages)
            return best
    finally:
        dist.close()


def train(cfg: Config, stages: List[Config], run_dir: Path) -> Optional[float]:
    """Train a new run into ``run_dir`` (made by Hydra): one stage, or with ``stage=all``
    every stage in order. The other ranks' Hydra directories are temporary."""

    def create(dist: Distributed, held: ExitStack) -> Tuple[RunDir, None]:
        if dist.is_main:  # the lock first: a second start into this directory writes nothing here
            Path(run_dir).mkdir(parents=True, exist_ok=True)  # Hydra made it; a caller of train() may not have
            held.enter_context(RunDir(run_dir).lock())
            RunDir(run_dir).create(cfg, stages)
        run = RunDir(dist.broadcast(run_dir))  # after create: the other ranks read what it wrote
        layout = dist.layout(cfg.training.batch_size)  # a collective: every rank takes part
        if dist.is_main:
            run.record_processes(layout)
        return run, None

    return session(cfg, stages, create)


def resume_run(plan: ResumePlan) -> Optional[float]:
    """Carry out a resume plan: continue its run exactly where the plan's checkpoint left it (or
    start its stage over when it has none), then run the stages after it. Under torchrun, on any
    number of ranks: the sequence of global batches continues whatever the world size."""

    def reopen(dist: Distributed, held: ExitStack) -> Tuple[RunDir, Optional[Checkpoint]]:
        path = plan.run.path if plan.run else None
        if dist.is_main and plan.run is None:  # a loose checkpoint file: its run continues in a new directory
            path = plan.new_dir or RunDir.new_path()
            RunDir(path).create(plan.config, plan.stages)
        run = RunDir(dist.broadcast(path))  # after create: the other ranks read what it wrote
        if dist.is_main:
            held.enter_context(run.lock())  # one process per run
        checkpoint = load_checkpoint(plan.checkpoint) if plan.checkpoint else None
        epoch, step = (checkpoint.epoch, checkpoint.global_step) if checkpoint else (None, None)
        layout = dist.layout(plan.config.training.batch_size)  # a resume may run on another world size
        if dist.is_main:  # nothing is written before the checkpoint has loaded: a failed resume leaves no trace
            setup_logging(run.log_file)
            run.record_resume(
                overrides=plan.overrides,
                changes=plan.changes,
                stage=plan.start,
                epoch=epoch,
                global_step=step,
                processes=layout,
            )
        if checkpoint is None:
            log.warning("resuming %s: stage %s never saved a checkpoint, so it starts over", run.path, plan.start)
        else:
            shown = "not recorded (an older file: counted from its epochs)" if step is None else step
            log.info(
                "resuming %s at stage %s, epoch %d, optimizer step %s", run.path, plan.start, (epoch or 0) + 1, shown
            )
        return run, checkpoint

    return session(plan.config, plan.stages, reopen, plan.start, plan.checkpoints)


def run_stage(cfg: Config, run: RunDir, dist: Distributed, checkpoint: Optional[Checkpoint] = None) -> Optional[float]:
    """Train one stage in ``run`` (continuing from ``checkpoint`` if given); records its
    status in run.json. Returns its best metric."""
    stage = cfg.stage.name
    trainer = build_trainer(cfg, run, dist, checkpoint, stop=STOP)
    n_params = sum(p.numel() for p in trainer.module.parameters())
    log.info(
        "stage %s on %s (process %d of %d, %d threads): %d parameters, %d steps/epoch, run dir %s",
        stage,
        dist.device,
        dist.ranks.rank + 1,
        dist.world_size,
        torch.get_num_threads(),
        n_params,
        trainer.steps_per_epoch,
        run.path,
    )
    record = run.update_stage if dist.is_main else lambda *args, **kwargs: None  # one rank writes
    record(stage, status="running", **({"resumed": now_iso()} if checkpoint else {"started": now_iso()}))
    # The stage's training time over all its sessions: report's wall_time_s of a resumed run.
    earlier = (run.status()["stages"].get(stage, {}).get("train_time_s") or 0.0) if dist.is_main else 0.0
    began = time.monotonic()

    def ended(status: str, **fields: Any) -> None:
        took = round(earlier + time.monotonic() - began, 1)
        record(stage, status=status, ended=now_iso(), train_time_s=took, **fields)

    try:
        best = trainer.fit()
        final = {k: v for k, v in trainer.last_metrics.items() if not k.startswith("loss_")}
        trainer.logger.hparams(flatten(config_to_dict(cfg)), {"best_metric": best, **final})
    except Preempted as e:
        ended("interrupted" if e.signal_name == "SIGINT" else "preempted")
        raise
    except KeyboardInterrupt:
        ended("interrupted")
        raise
    except BaseException:
        ended("failed")
        raise
    finally:
        trainer.close()
    ended(
        "done",
        best_metric=best,
        epochs=trainer.state.epoch,
        best_checkpoint=str(run.best_checkpoint(stage).relative_to(run.path)),
    )
    dist.barrier()  # the next stage reads this one's best checkpoint, written by the main rank
    return best


def run_pipeline(
    run: RunDir,
    stages: List[Config],
    dist: Distributed,
    start: Optional[str] = None,
    checkpoint: Optional[Checkpoint] = None,
    checkpoints: Optional[Dict[str, Path]] = None,
) -> Optional[float]:
    """Run the stages in order, skipping finished ones (and those before ``start``).

    The first stage that runs continues from ``checkpoint`` when given; a later one from its
    file in ``checkpoints`` (a done stage that a resume extended). A later stage without a file
    and without ``stage.init_from`` starts from the previous stage's best checkpoint.
    """
    best = None
    names = [c.stage.name for c in stages]
    first = names.index(start) if start else 0
    for i, cfg in enumerate(stages[first:], start=first):
        stage = cfg.stage.name
        status = run.status()["stages"].get(stage, {})
        if stage != start and is_finished(status, cfg):
            log.info("stage %s is done (best metric %s): skipped", stage, shown_metric(status.get("best_metric")))
            best = status.get("best_metric")
            continue
        if stage != start and stage in (checkpoints or {}):
            checkpoint = load_checkpoint(checkpoints[stage])
        if checkpoint is None and i > 0 and cfg.stage.init_from is None:  # also when a resume starts here
            cfg = replace(cfg, stage=replace(cfg.stage, init_from=str(run.best_checkpoint(names[i - 1]))))
        best, checkpoint, start = run_stage(cfg, run, dist, checkpoint), None, None
    return best


def log_summary(run: RunDir, stages: List[Config]) -> None:
    """What a finished run produced, and the commands that continue or inspect it."""
    status = run.status()["stages"]
    lines = [f"run finished: {run.path}"]
    for cfg in stages:
        s = status.get(cfg.stage.name, {})
        epochs, best = s.get("epochs"), shown_metric(s.get("best_metric"))
        lines.append(
            f"  {cfg.stage.name}: best metric {best}, {epochs} epoch{'' if epochs == 1 else 's'}, "
            f"best checkpoint {run.best_checkpoint(cfg.stage.name)}"
        )
    last = stages[-1].stage.name
    train, best = ("python", "-m", "inktrace_train"), str(run.best_checkpoint(last))
    lines += [
        f"  train longer:  {shell_command(*train, f'+resume={run.path}', 'training.epochs=N')}",
        f"  inspect best:  {shell_command('python', '-m', 'inktrace_train.ckpt', 'inspect', best)}",
        f"  curves:        {shell_command('tensorboard', '--logdir', str(run.tb_root))}",
    ]
    if last == "structural":
        lines.append(f"  dense stage:   {dense_stage_command(run)}")
    log.info("\n".join(lines))


def dense_stage_command(run: RunDir) -> str:
    """The command that trains the dense stage from a structural run: the run's own model and
    data settings again (a tiny model's weights fit no other backbone, and your strokes are not
    KanjiVG), without its stage and epochs (the dense stage's own) or a sweep preset (sweep=lr
    would make it a sweep)."""
    kept = [
        o
        for o in run.launch_overrides()
        if override_key(o).split(".")[0] not in ("stage", "hydra", "sweep") and override_key(o) != "training.epochs"
    ]
    init = f"stage.init_from={hydra_quoted(str(run.path))}"
    config_dir = run.launch_config_dir()  # experiment=mine needs the folder it came from
    own = ["--config-dir", config_dir] if config_dir else []
    return shell_command("python", "-m", "inktrace_train", *own, *kept, "stage=dense", init)


def setup_logging(path: Path) -> None:
    """Console and ``train.log`` (appended), as Hydra sets them up for a new run; inside a
    Hydra app (a sweep job, ``training.auto_resume``) Hydra has done so already."""
    if logging.getLogger().handlers:
        return
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(path, mode="a")):
        handler.setFormatter(fmt)
        root.addHandler(handler)

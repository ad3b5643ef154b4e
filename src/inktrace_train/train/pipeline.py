"""Run a new run, continue one, and every stage of a pipeline in order.

``train`` starts a run in the directory Hydra made; ``resume_run`` continues one from
its newest valid checkpoint; both go through ``run_pipeline``, which runs each
unfinished stage with ``run_stage`` (a later stage starts from the previous stage's
best checkpoint).
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from inktrace_train.checkpoint.store import Checkpoint, CheckpointManager, load_checkpoint
from inktrace_train.config.schema import Config, apply_changes, flatten
from inktrace_train.launch.resume import ResumePlan
from inktrace_train.run.rundir import RunDir, config_to_dict, hydra_quoted, now_iso, shell_command
from inktrace_train.run.signals import Preempted, StopRequest
from inktrace_train.train.build import build_trainer
from inktrace_train.train.distributed import Distributed

log = logging.getLogger(__name__)
STOP = StopRequest()  # SIGTERM/SIGUSR1 ask this process to save and stop (signals are per process)


def train(cfg: Config, stages: List[Config], run_dir: Path) -> Optional[float]:
    """Train a new run into ``run_dir`` (made by Hydra): one stage, or with ``stage=all``
    every stage in order. Returns the best validation metric of the last stage.

    Under torchrun every rank trains; the main rank's ``run_dir`` is the run's (the others'
    Hydra directories are temporary) and only the main rank writes there.
    """
    torch.set_flush_denormal(True)  # denormals make CPU steps ~20x slower
    STOP.install()
    dist = Distributed.setup(cfg.training.device)
    try:
        with ExitStack() as held:
            if dist.is_main:
                RunDir(run_dir).create(cfg, stages)
                held.enter_context(RunDir(run_dir).lock())
            run = RunDir(dist.broadcast(run_dir))  # after create: the other ranks read what it wrote
            layout = dist.layout(cfg.training.batch_size)
            if dist.is_main:
                run.record_processes(layout)
            best = run_pipeline(run, stages)
            if dist.is_main:
                log_summary(run, stages)
            return best
    finally:
        dist.close()


def run_stage(cfg: Config, run: RunDir, checkpoint: Optional[Checkpoint] = None) -> Optional[float]:
    """Train one stage in ``run`` (continuing from ``checkpoint`` if given); records its
    status in run.json. Returns its best metric."""
    stage = cfg.stage.name
    dist = Distributed.setup(cfg.training.device)  # joins the job's process group once
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
    try:
        best = trainer.fit()
        final = {k: v for k, v in trainer.last_metrics.items() if not k.startswith("loss_")}
        trainer.logger.hparams(flatten(config_to_dict(cfg)), {"best_metric": best, **final})
    except Preempted as e:
        record(stage, status="interrupted" if e.signal_name == "SIGINT" else "preempted", ended=now_iso())
        raise
    except KeyboardInterrupt:
        record(stage, status="interrupted", ended=now_iso())
        raise
    except BaseException:
        record(stage, status="failed", ended=now_iso())
        raise
    finally:
        trainer.close()
    record(
        stage,
        status="done",
        ended=now_iso(),
        best_metric=best,
        epochs=trainer.state.epoch,
        best_checkpoint=str(run.best_checkpoint(stage).relative_to(run.path)),
    )
    dist.barrier()  # the next stage reads this one's best checkpoint, written by the main rank
    return best


def run_pipeline(
    run: RunDir, stages: List[Config], start: Optional[str] = None, checkpoint: Optional[Checkpoint] = None
) -> Optional[float]:
    """Run the stages in order, skipping finished ones (and those before ``start``).

    The first stage that runs continues from ``checkpoint`` when given. A later stage
    without ``stage.init_from`` starts from the previous stage's best checkpoint.
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
        if stage != start and status.get("status") == "done":  # done, but a resume extended its epochs
            checkpoint = newest_checkpoint(run, cfg)
        if checkpoint is None and i > 0 and cfg.stage.init_from is None:  # also when a resume starts here
            cfg = replace(cfg, stage=replace(cfg.stage, init_from=str(run.best_checkpoint(names[i - 1]))))
        best, checkpoint, start = run_stage(cfg, run, checkpoint), None, None
    return best


def is_finished(status: Dict[str, Any], cfg: Config) -> bool:
    """Done, and not reopened by a resume that extended ``training.epochs``."""
    return status.get("status") == "done" and status.get("epochs", 0) >= cfg.training.epochs


def newest_checkpoint(run: RunDir, cfg: Config) -> Optional[Checkpoint]:
    """The newest valid checkpoint of a stage, or None if it never saved one."""
    t = cfg.training
    manager = CheckpointManager(run.checkpoint_dir(cfg.stage.name), t.keep_last_n, t.save_interval)
    return manager.load_newest_valid() if manager.has_files() else None


def resume_point(run: RunDir, stages: List[Config]) -> Tuple[Optional[str], Optional[Checkpoint]]:
    """(first unfinished stage, its newest valid checkpoint); (None, None) when all are done.
    A done stage is unfinished again when a resume extended its ``training.epochs``. The
    checkpoint is None when the stage never saved one (killed before its first save): it then
    starts over from its own config (a later stage from the previous stage's best), exactly as
    it first started.

    Raises:
        CheckpointError: the stage has checkpoint files, but none of them is valid.
    """
    statuses = run.status()["stages"]
    for cfg in stages:
        if not is_finished(statuses.get(cfg.stage.name, {}), cfg):
            return cfg.stage.name, newest_checkpoint(run, cfg)
    return None, None


def resume_run(plan: ResumePlan) -> Optional[float]:
    """Continue a run exactly where its newest valid checkpoint (or the plan's checkpoint)
    left it; then run the stages after it (``stage=all``). Under torchrun, on any number
    of ranks: the sequence of global batches continues whatever the world size."""
    torch.set_flush_denormal(True)
    STOP.install()
    dist = Distributed.setup(plan.config.training.device)
    try:
        with plan.run.lock() if plan.run and dist.is_main else nullcontext():  # one process per run
            return _continue(plan, dist)
    finally:
        dist.close()


def _continue(plan: ResumePlan, dist: Distributed) -> Optional[float]:
    if plan.run is None:  # a loose checkpoint file: its run continues in a new directory
        stage, checkpoint, stages = plan.config.stage.name, load_checkpoint(plan.checkpoint), [plan.config]
        path = None
        if dist.is_main:  # a new directory: no other process knows it yet
            path = RunDir.new_path()
            RunDir(path).create(plan.config, stages)
        run = RunDir(dist.broadcast(path))
    else:
        run = plan.run
        stages = [apply_changes(c, plan.changes) for c in run.stage_configs()]
        if plan.checkpoint is not None:
            stage, checkpoint = RunDir.containing(plan.checkpoint)[1], load_checkpoint(plan.checkpoint)
        else:
            stage, checkpoint = resume_point(run, stages)
    last = stages[-1]
    if stage is None or (stage == last.stage.name and checkpoint and (checkpoint.epoch or 0) >= last.training.epochs):
        best = run.status()["stages"][last.stage.name].get("best_metric")
        if dist.is_main:
            shown = shown_metric(best)
            print(f"{run.path} is already finished (every stage done, best metric {shown}): nothing to resume")
        return best
    epoch, step = (checkpoint.epoch, checkpoint.global_step) if checkpoint else (None, None)
    layout = dist.layout(plan.config.training.batch_size)  # a resume may run on another world size
    if dist.is_main:  # nothing is written before the checkpoint has loaded: a failed resume leaves no trace
        setup_logging(run.log_file)
        run.record_resume(
            overrides=plan.overrides, changes=plan.changes, stage=stage, epoch=epoch, global_step=step, processes=layout
        )
    if checkpoint is None:
        log.warning("resuming %s: stage %s never saved a checkpoint, so it starts over", run.path, stage)
    else:
        log.info("resuming %s at stage %s, epoch %d, optimizer step %s", run.path, stage, (epoch or 0) + 1, step)
    best = run_pipeline(run, stages, start=stage, checkpoint=checkpoint)
    if dist.is_main:
        log_summary(run, stages)
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
        init = f"stage.init_from={hydra_quoted(str(run.path))}"
        lines.append(f"  dense stage:   {shell_command(*train, 'stage=dense', init)}")
    log.info("\n".join(lines))


def shown_metric(metric: Optional[float]) -> str:
    """A metric as every message shows it: four decimals, or why there is none."""
    return "none (no finite validation metric)" if metric is None else f"{metric:.4f}"


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

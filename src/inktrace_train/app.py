"""Compose the training objects from a typed Config and run a stage.

The only place below the entry point that reads the config tree: everything it
builds takes plain objects and typed arguments.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from inktrace_train.checkpoint import BEST, CheckpointError, CheckpointManager, load_checkpoint
from inktrace_train.compose import new_run_dir
from inktrace_train.config import CONFIG_VERSION, Config, DataConfig
from inktrace_train.data import Augmenter, EpochSampler, InkDataset, Renderer, worker_init_fn
from inktrace_train.logger import RunLogger
from inktrace_train.losses import StructureLoss
from inktrace_train.metrics import ValidationMetrics, best_metric
from inktrace_train.model import InkTraceModel, parameter_groups
from inktrace_train.optim import warmup_cosine
from inktrace_train.resume import ResumePlan
from inktrace_train.runs import RunDir, config_to_dict, git_state, now_iso
from inktrace_train.trainer import Trainer
from inktrace_train.transfer import init_from

log = logging.getLogger(__name__)

TRAIN_STREAM, VAL_STREAM = 0, 1  # separate random streams for training and validation samples


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def pick_amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """auto: bf16 autocast on CUDA where supported (fp16 with loss scaling otherwise), fp32 elsewhere."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def make_source(data: DataConfig, split: str):
    if data.source == "synthetic":
        from inktrace_train.data.synthetic import SyntheticStrokes

        return SyntheticStrokes(max_strokes=data.max_strokes)
    from inktrace_train.data.kanjivg import KanjiVGStrokes

    return KanjiVGStrokes(split=split, val_fraction=data.val_fraction, test_fraction=data.test_fraction,
                          cache_dir=data.cache_dir)


def build_loaders(cfg: Config, device: torch.device) -> Tuple[DataLoader, DataLoader]:
    """Training loader (fresh samples each epoch) and the fixed validation loader."""
    d = cfg.data
    augment = Augmenter(img_size=d.img_size, rotation_deg=d.rotation_deg, scale_min=d.scale_min,
                        scale_max=d.scale_max, shear=d.shear, shift=d.shift, wobble=d.wobble,
                        pen_width_min=d.pen_width_min, pen_width_max=d.pen_width_max)
    render = Renderer(d.img_size)
    common = dict(augment=augment, render=render, seed=cfg.training.seed, mask_ratio=cfg.training.mask_ratio,
                  patch_size=2 ** len(cfg.model.stem_channels))
    train_set = InkDataset(make_source(d, "train"), stream=TRAIN_STREAM, fixed=False, **common)
    val_set = InkDataset(make_source(d, "val"), stream=VAL_STREAM, fixed=True, **common)
    workers = min(d.num_workers, available_cores())
    if workers < d.num_workers:
        log.info("data.num_workers=%d capped at the %d cores available", d.num_workers, workers)
    loader = dict(batch_size=cfg.training.batch_size, num_workers=workers, pin_memory=device.type == "cuda",
                  persistent_workers=workers > 0, worker_init_fn=worker_init_fn)
    # Own generators: creating a loader iterator must not draw from the global torch RNG,
    # or a resumed run (fewer iterators made) would see different dropout noise.
    train = DataLoader(train_set, sampler=EpochSampler(d.train_samples, epoch=0), drop_last=True,
                       generator=torch.Generator().manual_seed(cfg.training.seed), **loader)
    val = DataLoader(val_set, sampler=EpochSampler(d.val_samples, epoch=0),
                     generator=torch.Generator().manual_seed(cfg.training.seed), **loader)
    return train, val


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                    checkpoint: Optional[Dict[str, Any]]) -> LambdaLR:
    """Warmup + cosine over the whole stage. Resuming with more epochs continues the
    cosine from the lr reached at the resume point down to the new horizon (no jump)."""
    t = cfg.training
    restart = None
    sched = None if checkpoint is None else checkpoint.get("scheduler_state_dict")
    old_epochs = ((checkpoint or {}).get("config") or {}).get("training", {}).get("epochs")
    if sched is not None and old_epochs != t.epochs:
        restart = (sched["last_epoch"], sched["_last_lr"][0] / sched["base_lrs"][0])
    return warmup_cosine(optimizer, total_steps=t.epochs * steps_per_epoch,
                         warmup_steps=round(t.warmup_epochs * steps_per_epoch),
                         final_lr_ratio=t.final_lr_ratio, restart=restart)


def build_model(cfg: Config, run: RunDir, fresh: bool) -> InkTraceModel:
    """The stage's model: seeded init, then ``stage.init_from`` weights for a fresh stage."""
    stage = cfg.stage.name
    torch.manual_seed(cfg.training.seed)
    model = InkTraceModel(**asdict(cfg.model))
    if not fresh:
        return model  # a resumed stage takes its weights from the checkpoint
    if cfg.stage.init_from:
        report = init_from(model, cfg.stage.init_from, stage, asdict(cfg.model), cfg.data.img_size,
                           cfg.stage.allow_shape_mismatch)
        (run.path / f"init_report_{stage}.txt").write_text(report + "\n")
    elif stage != "structural":
        log.warning("stage %s starts from scratch: pass stage.init_from=PATH (a structural checkpoint "
                    "file or a run directory) to start from structural weights", stage)
    return model


def build_trainer(cfg: Config, run: RunDir, device: torch.device,
                  checkpoint: Optional[Dict[str, Any]] = None) -> Trainer:
    """Every object of a stage, fresh or (with ``checkpoint``) restored to continue exactly."""
    t, stage = cfg.training, cfg.stage.name
    model = build_model(cfg, run, fresh=checkpoint is None).to(device)
    train_loader, val_loader = build_loaders(cfg, device)
    optimizer = torch.optim.AdamW(parameter_groups(model, t.weight_decay), lr=t.lr)
    scheduler = build_scheduler(cfg, optimizer, math.ceil(len(train_loader) / t.grad_accum_steps), checkpoint)
    metadata = {"stage": stage, "run_id": run.run_id, "config_version": CONFIG_VERSION,
                "torch_version": str(torch.__version__),
                "git_commit": git_state(Path(__file__).resolve().parent)["commit"]}
    purge_step = None if checkpoint is None else (checkpoint.get("global_step") or 0) + 1  # drop replays
    trainer = Trainer(
        model, StructureLoss(**asdict(t.loss_weights), full_heads=cfg.model.full_heads), optimizer, scheduler,
        train_loader, val_loader, ValidationMetrics, lambda m: best_metric(stage, m),
        CheckpointManager(run.checkpoint_dir(stage), t.keep_last_n, t.save_interval),
        RunLogger(run.tb_dir(stage), stage, purge_step=purge_step),
        {"config": config_to_dict(cfg), "metadata": metadata},
        device=device, epochs=t.epochs, grad_accum_steps=t.grad_accum_steps, grad_clip=t.grad_clip,
        log_every_n_steps=t.log_every_n_steps, save_every_n_steps=t.save_every_n_steps,
        mask_ratio=t.mask_ratio, amp_dtype=pick_amp_dtype(t.precision, device))
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    return trainer


def run_stage(cfg: Config, run: RunDir, checkpoint: Optional[Dict[str, Any]] = None) -> Optional[float]:
    """Train one stage in ``run`` (continuing from ``checkpoint`` if given); records its
    status in run.json. Returns its best metric."""
    stage = cfg.stage.name
    device = pick_device(cfg.training.device)
    trainer = build_trainer(cfg, run, device, checkpoint)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    log.info("stage %s on %s: %d parameters, %d steps/epoch, run dir %s", stage, device, n_params,
             trainer.steps_per_epoch, run.path)
    run.update_stage(stage, status="running", **({"resumed": now_iso()} if checkpoint else {"started": now_iso()}))
    try:
        best = trainer.fit()
        final = {k: v for k, v in trainer.last_metrics.items() if not k.startswith("loss_")}
        trainer.logger.hparams(flat_config(cfg), {"best_metric": best, **final})
    except BaseException:
        run.update_stage(stage, status="failed", ended=now_iso())
        raise
    finally:
        trainer.logger.close()
    run.update_stage(stage, status="done", ended=now_iso(), best_metric=best, epochs=trainer.state.epoch,
                     best_checkpoint=str((run.checkpoint_dir(stage) / BEST).relative_to(run.path)))
    return best


def flat_config(cfg: Config) -> Dict[str, Any]:
    """``{"training.lr": 0.001, ...}``: the hyper-parameters as TensorBoard shows them."""
    out: Dict[str, Any] = {}

    def walk(node: Dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict) and k != "overrides":
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = v

    walk(config_to_dict(cfg), "")
    return out


def train(cfg: Config, stages: List[Config], run_dir: Path) -> Optional[float]:
    """Train a new run into ``run_dir`` (made by Hydra): one stage, or with ``stage=all``
    every stage in order. Returns the best validation metric of the last stage."""
    torch.set_flush_denormal(True)  # denormals make CPU steps ~20x slower
    run = RunDir(run_dir)
    run.create(cfg, stages)
    return run_pipeline(run, stages)


def run_pipeline(run: RunDir, stages: List[Config], start: Optional[str] = None,
                 checkpoint: Optional[Dict[str, Any]] = None) -> Optional[float]:
    """Run the stages in order, skipping finished ones (and those before ``start``).

    The first stage that runs continues from ``checkpoint`` when given. A later stage
    without ``stage.init_from`` starts from the previous stage's best checkpoint.
    """
    best, previous = None, None
    names = [c.stage.name for c in stages]
    for cfg in stages[names.index(start) if start else 0:]:
        stage = cfg.stage.name
        status = run.status()["stages"].get(stage, {})
        if stage != start and is_finished(status, cfg):
            log.info("stage %s is done (best metric %s): skipped", stage, status.get("best_metric"))
            best, previous = status.get("best_metric"), stage
            continue
        if stage != start and status.get("status") == "done":  # done, but a resume extended its epochs
            checkpoint = newest_checkpoint(run, cfg)
        if checkpoint is None and previous is not None and cfg.stage.init_from is None:
            cfg = replace(cfg, stage=replace(cfg.stage, init_from=str(run.checkpoint_dir(previous) / BEST)))
        best, previous, checkpoint, start = run_stage(cfg, run, checkpoint), stage, None, None
    return best


def is_finished(status: Dict[str, Any], cfg: Config) -> bool:
    """Done, and not reopened by a resume that extended ``training.epochs``."""
    return status.get("status") == "done" and status.get("epochs", 0) >= cfg.training.epochs


def newest_checkpoint(run: RunDir, cfg: Config) -> Optional[Dict[str, Any]]:
    """The newest valid checkpoint of a stage, or None if it never saved one."""
    t = cfg.training
    manager = CheckpointManager(run.checkpoint_dir(cfg.stage.name), t.keep_last_n, t.save_interval)
    if not any((run.checkpoint_dir(cfg.stage.name) / name).is_file() for name in manager.candidates()):
        return None
    return manager.load_newest_valid()


def resume_point(run: RunDir, stages: List[Config]) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(first unfinished stage, its newest valid checkpoint); (None, None) when all are done.
    A done stage is unfinished again when a resume extended its ``training.epochs``.

    Raises:
        CheckpointError: the run never saved a checkpoint, or none of the stage's is valid.
    """
    statuses = run.status()["stages"]
    for i, cfg in enumerate(stages):
        stage = cfg.stage.name
        if is_finished(statuses.get(stage, {}), cfg):
            continue
        checkpoint = newest_checkpoint(run, cfg)
        if checkpoint is None and i == 0:
            raise CheckpointError(f"no checkpoint to resume from: {run.checkpoint_dir(stage)} holds no "
                                  "checkpoint files")
        return stage, checkpoint  # None: killed before its first save; starts from the previous stage
    return None, None


def resume(plan: ResumePlan) -> Optional[float]:
    """Continue a run exactly where its newest valid checkpoint left it; then run the
    stages after it (``stage=all``)."""
    torch.set_flush_denormal(True)
    if plan.run_dir is None:  # a loose checkpoint file: its run continues in a new directory
        stage, checkpoint = plan.config.stage.name, load_checkpoint(plan.checkpoint)
        run, stages = RunDir(Path(new_run_dir())), [plan.config]
        run.create(plan.config, stages)
    else:
        run = RunDir(plan.run_dir)
        stages = [apply_changes(c, plan.changes) for c in run.stage_configs()]
        if plan.checkpoint is not None:
            stage, checkpoint = plan.checkpoint.parent.name, load_checkpoint(plan.checkpoint)
        else:
            stage, checkpoint = resume_point(run, stages)
    if stage is None or (checkpoint and (checkpoint.get("epoch") or 0) >= stages[-1].training.epochs
                         and stage == stages[-1].stage.name):
        best = run.status()["stages"][stages[-1].stage.name].get("best_metric")
        print(f"{run.path} is already finished (every stage done, best metric {best}): nothing to resume")
        return best
    # Nothing is written before the checkpoint has loaded: a failed resume leaves no trace.
    setup_logging(run.path / "train.log")
    run.record_resume(overrides=plan.overrides, changes=plan.changes, stage=stage,
                      epoch=checkpoint.get("epoch") if checkpoint else None,
                      global_step=checkpoint.get("global_step") if checkpoint else None)
    log.info("resuming %s at stage %s, epoch %s, step %s", run.path, stage,
             checkpoint.get("epoch") if checkpoint else 0, checkpoint.get("global_step") if checkpoint else 0)
    return run_pipeline(run, stages, start=stage, checkpoint=checkpoint)


def apply_changes(cfg: Config, changes: Dict[str, Any]) -> Config:
    """A stage config with the allowed resume changes (dotted keys) applied."""
    from omegaconf import OmegaConf

    from inktrace_train.config import to_config

    node = OmegaConf.structured(cfg)
    for key, value in changes.items():
        OmegaConf.update(node, key, value)
    return to_config(node)


def setup_logging(path: Path) -> None:
    """Console and ``train.log`` (appended), as Hydra sets them up for a new run."""
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(path, mode="a")):
        handler.setFormatter(fmt)
        root.addHandler(handler)

"""Config -> objects: the device, loaders, model, optimizer, schedule and Trainer of a stage.

The only place below the entry point that reads the config tree: everything it
builds takes plain objects and typed arguments (config field names equal the
constructor arguments).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch.utils.data import DataLoader

from inktrace_train.checkpoint.store import Checkpoint, CheckpointManager
from inktrace_train.config.schema import BRUSH_SOURCES, CONFIG_VERSION, Config, DataConfig
from inktrace_train.data import Augmenter, EpochSampler, InkDataset, Renderer, worker_init_fn
from inktrace_train.data.device_batch import Centerlines, collate_centerlines
from inktrace_train.data.device_render import DeviceRenderer
from inktrace_train.data.pen import PenStyle
from inktrace_train.errors import ConfigError, first_line
from inktrace_train.evaluation.metrics import ValidationMetrics, select_metric
from inktrace_train.model.losses import StructureLoss
from inktrace_train.model.network import InkTraceModel, parameter_groups
from inktrace_train.run.atomic import check_writable, write_text
from inktrace_train.run.cores import available_cores
from inktrace_train.run.rundir import RunDir, config_to_dict, git_state
from inktrace_train.run.signals import StopRequest
from inktrace_train.train.distributed import Distributed
from inktrace_train.train.logger import RunLogger
from inktrace_train.train.optim import WarmupCosine
from inktrace_train.train.trainer import Trainer
from inktrace_train.train.transfer import init_from

log = logging.getLogger(__name__)

TRAIN_STREAM, VAL_STREAM = 0, 1  # separate random streams for training and validation samples


def pick_amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """auto: bf16 autocast on CUDA where supported (fp16 with loss scaling otherwise), fp32 elsewhere."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def on_cuda_unless_set(value: Optional[bool], device: torch.device) -> bool:
    """``training.compile`` / ``channels_last``: null means on for CUDA, off elsewhere (on a CPU
    the compile time is not repaid and NHWC convolutions are no faster)."""
    return device.type == "cuda" if value is None else bool(value)


def renders_on_device(data: DataConfig, device: torch.device) -> bool:
    """``data.renderer``: auto draws the targets on the training device when it is a GPU (data-
    loader workers could not keep up with one) and the ink is swept pen ink (no brush source, no
    font ink, no outline ink), in the workers elsewhere."""
    if data.renderer == "auto":
        pen_only = data.source not in BRUSH_SOURCES and data.font_ink is None and data.outline_ink == 0
        return device.type == "cuda" and pen_only
    return data.renderer == "device"


def make_device_renderer(d: DataConfig) -> DeviceRenderer:
    """The device renderer, its sample windows sized for the widest pen and hairline the data draws."""
    swept = max(d.pen_pressure, d.pen_nib, d.pen_flat_caps) > 0
    return DeviceRenderer(
        d.img_size,
        sweep_half_width=d.pen_width_max / 2 if swept else None,
        hairline_half_width=hairline_half_width(d),
    )


def hairline_half_width(d: DataConfig) -> Optional[float]:
    """The widest half width of the ink-only lines between strokes: a hairline's, or with
    cursive joins a pen's; None when the data draws neither."""
    widest = max(d.hairline_width_max if d.hairlines > 0 else 0.0, d.pen_width_max if d.cursive_joins > 0 else 0.0)
    return widest / 2 if widest > 0 else None


def make_augmenter(d: DataConfig) -> Augmenter:
    """The data config's augmentation (the Augmenter's arguments are DataConfig fields)."""
    return Augmenter(
        img_size=d.img_size,
        rotation_deg=d.rotation_deg,
        scale_min=d.scale_min,
        scale_max=d.scale_max,
        shear=d.shear,
        shift=d.shift,
        wobble=d.wobble,
        angular=d.angular,
        pen=PenStyle(
            pen_width_min=d.pen_width_min,
            pen_width_max=d.pen_width_max,
            pen_width_sampling=d.pen_width_sampling,
            pen_pressure=d.pen_pressure,
            pen_taper=d.pen_taper,
            pen_nib=d.pen_nib,
            pen_flat_caps=d.pen_flat_caps,
            outline_ink=d.outline_ink,
            hairlines=d.hairlines,
            hairline_gap=d.hairline_gap,
            hairline_width_min=d.hairline_width_min,
            hairline_width_max=d.hairline_width_max,
            hairline_intensity_min=d.hairline_intensity_min,
            hairline_intensity_max=d.hairline_intensity_max,
            cursive_joins=d.cursive_joins,
        ),
    )


def make_source(data: DataConfig, split: str):
    """The glyphs of ``split`` from ``data.source``, interleaved with ``data.extra_path``'s if
    given, and in the training split with ``data.font_ink``'s as one more equal share beside the
    parts interleaved so far (``data=mixed``'s KanjiVG and hanzi are two such parts), or as
    ``data.font_ink_share`` of the glyphs, the parts sharing the rest equally."""
    source = _main_source(data, split)
    from inktrace_train.data.glyphs import MixedStrokes

    if data.extra_path is not None:
        from inktrace_train.data.strokes import StrokeFiles

        fractions = dict(val_fraction=data.val_fraction, test_fraction=data.test_fraction)
        extra = StrokeFiles(
            split, path=data.extra_path, cache_dir=data.cache_dir, option="data.extra_path", **fractions
        )
        source = MixedStrokes(source, extra)
    if data.font_ink is None or split != "train":
        return source
    from inktrace_train.data.fontink import FontInkGlyphs

    parts = source.sources if isinstance(source, MixedStrokes) else (source,)
    if data.font_ink_share is None:
        return MixedStrokes(*parts, FontInkGlyphs(data.font_ink))
    # share a/b: weight a*n for the fonts, b-a for each of the n parts
    share = Fraction(data.font_ink_share).limit_denominator(100)
    weights = [share.denominator - share.numerator] * len(parts) + [share.numerator * len(parts)]
    return MixedStrokes(*parts, FontInkGlyphs(data.font_ink), weights=weights)


def _main_source(data: DataConfig, split: str):
    if data.source == "synthetic":
        from inktrace_train.data.synthetic import SyntheticStrokes

        return SyntheticStrokes(max_strokes=data.max_strokes)
    fractions = dict(val_fraction=data.val_fraction, test_fraction=data.test_fraction)
    if data.source == "strokes":
        from inktrace_train.data.strokes import StrokeFiles

        return StrokeFiles(split, path=data.path, cache_dir=data.cache_dir, **fractions)
    if data.source == "custom":
        from inktrace_train.data.custom import CustomSource

        return CustomSource(data.source_target, dict(data.source_args), split, **fractions)
    from inktrace_train.data.glyphs import MixedStrokes
    from inktrace_train.data.hanzi import HanziStrokes
    from inktrace_train.data.kanjivg import KanjiVGStrokes

    if data.source == "kanjivg":
        return KanjiVGStrokes(split=split, cache_dir=data.cache_dir, **fractions)
    hanzi = HanziStrokes(split, source=data.hanzi_dir, cache_dir=data.cache_dir, **fractions)
    if data.source == "hanzi":
        return hanzi
    return MixedStrokes(KanjiVGStrokes(split=split, cache_dir=data.cache_dir, **fractions), hanzi)


def build_loaders(cfg: Config, dist: Distributed) -> Tuple[DataLoader, DataLoader]:
    """This rank's share of the training loader (fresh samples each epoch) and of the fixed
    validation loader. ``training.batch_size`` is the global batch: each of the ranks loads an
    equal part of it."""
    d = cfg.data
    augment = make_augmenter(d)
    on_device = renders_on_device(d, dist.device)
    render = Centerlines(d.img_size) if on_device else Renderer(d.img_size)
    common = dict(
        augment=augment,
        render=render,
        seed=cfg.training.seed,
        mask_ratio=cfg.training.mask_ratio,
        patch_size=2 ** len(cfg.model.stem_channels),
        degrade=d.degrade,
    )
    train_set = InkDataset(make_source(d, "train"), stream=TRAIN_STREAM, fixed=False, **common)
    val_set = InkDataset(make_source(d, "val"), stream=VAL_STREAM, fixed=True, **common)
    workers = min(d.num_workers, available_cores())
    if workers < d.num_workers:
        log.info("data.num_workers=%d capped at the %d cores available", d.num_workers, workers)
    batch, rank, world = cfg.training.batch_size, dist.ranks.rank, dist.world_size
    if batch % world:
        raise ConfigError(
            f"training.batch_size={batch} is the global batch: it must divide evenly over the "
            f"{world} processes of this job"
        )
    loader = dict(
        batch_size=batch // world,
        num_workers=workers,
        pin_memory=dist.device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=worker_init_fn,
        collate_fn=collate_centerlines if on_device else None,
    )
    # Own generators: creating a loader iterator must not draw from the global torch RNG,
    # or a resumed run (fewer iterators made) would see different dropout noise.
    train = DataLoader(
        train_set,
        sampler=EpochSampler(d.train_samples, 0, batch, drop_last=True, rank=rank, world_size=world),
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.training.seed),
        **loader,
    )
    val = DataLoader(
        val_set,
        sampler=EpochSampler(d.val_samples, 0, batch, drop_last=False, rank=rank, world_size=world),
        generator=torch.Generator().manual_seed(cfg.training.seed),
        **loader,
    )
    return train, val


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> WarmupCosine:
    """Warmup + cosine over the whole stage (``steps_per_epoch`` optimizer steps per epoch)."""
    t = cfg.training
    return WarmupCosine(
        optimizer,
        total_steps=t.epochs * steps_per_epoch,
        warmup_steps=round(t.warmup_epochs * steps_per_epoch),
        final_lr_ratio=t.final_lr_ratio,
    )


def build_model(cfg: Config, run: RunDir, fresh: bool, is_main: bool = True) -> InkTraceModel:
    """The stage's model: seeded init, then ``stage.init_from`` weights for a fresh stage
    (every rank loads them; the main one writes the report)."""
    stage = cfg.stage.name
    torch.manual_seed(cfg.training.seed)
    try:
        model = InkTraceModel(**asdict(cfg.model))
    except (RuntimeError, MemoryError) as e:  # e.g. model.embed_dim=10**9: more memory than the machine has
        raise ConfigError(f"cannot build the model from model.*: {first_line(e)}") from None
    if not fresh:
        return model  # a resumed stage takes its weights from the checkpoint
    if cfg.stage.init_from:
        report = init_from(
            model, cfg.stage.init_from, stage, asdict(cfg.model), cfg.data.img_size, cfg.stage.allow_shape_mismatch
        )
        if is_main:
            write_text(run.init_report(stage), report + "\n")
    elif stage != "structural":
        log.warning(
            "stage %s starts from scratch: pass stage.init_from=PATH (a structural checkpoint "
            "file or a run directory) to start from structural weights",
            stage,
        )
    return model


def build_trainer(
    cfg: Config,
    run: RunDir,
    dist: Distributed,
    checkpoint: Optional[Checkpoint] = None,
    stop: Optional[StopRequest] = None,
) -> Trainer:
    """Every object of a stage, fresh or (with ``checkpoint``) restored to continue exactly.
    Only the main rank gets a checkpoint manager and a TensorBoard writer: it alone writes."""
    t, stage, device = cfg.training, cfg.stage.name, dist.device
    channels_last = on_cuda_unless_set(t.channels_last, device)
    model = build_model(cfg, run, fresh=checkpoint is None, is_main=dist.is_main).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_loader, val_loader = build_loaders(cfg, dist)
    fused = device.type == "cuda"  # one kernel for the whole update
    optimizer = torch.optim.AdamW(parameter_groups(model, t.weight_decay), lr=t.lr, fused=fused or None)
    scheduler = build_scheduler(cfg, optimizer, math.ceil(len(train_loader) / t.grad_accum_steps))
    metadata = {
        "stage": stage,
        "run_id": run.run_id,
        "config_version": CONFIG_VERSION,
        "torch_version": str(torch.__version__),
        "git_commit": git_state(Path(__file__).resolve().parent)["commit"],
    }
    if dist.is_main:  # an unwritable checkpoint directory must not cost an epoch first
        check_writable(run.checkpoint_dir(stage))
    purge_step = None  # TensorBoard events at or after it are dropped: steps a killed run logged twice
    if checkpoint is not None:
        purge_step = (checkpoint.global_step or 0) + 1
    elif run.tb_dir(stage).exists():  # a stage that starts over: it was killed before its first save
        purge_step = 0
    trainer = Trainer(
        model,
        StructureLoss(**asdict(t.loss_weights), full_heads=cfg.model.full_heads),
        optimizer,
        scheduler,
        train_loader,
        val_loader,
        ValidationMetrics,
        lambda m: select_metric(stage, m),
        CheckpointManager(run.checkpoint_dir(stage), t.keep_last_n, t.save_interval) if dist.is_main else None,
        RunLogger(run.tb_dir(stage), stage, purge_step=purge_step, enabled=dist.is_main),
        config=config_to_dict(cfg),
        metadata=metadata,
        dist=dist,
        epochs=t.epochs,
        grad_accum_steps=t.grad_accum_steps,
        grad_clip=t.grad_clip,
        log_every_n_steps=t.log_every_n_steps,
        save_every_n_steps=t.save_every_n_steps,
        mask_ratio=t.mask_ratio,
        amp_dtype=pick_amp_dtype(t.precision, device),
        compile=on_cuda_unless_set(t.compile, device),
        render=make_device_renderer(cfg.data) if renders_on_device(cfg.data, device) else None,
        channels_last=channels_last,
        stop=stop,
        ema_decay=t.ema_decay,
    )
    if checkpoint is not None:
        trainer.restore(checkpoint)
    return trainer

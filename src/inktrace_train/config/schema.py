"""The configuration schema: every option, its one default and its one comment.

Yaml files in ``conf/`` only select and override these values; Hydra composes them
into a :class:`Config` (struct mode, so an unknown key is an error). This module must
not import torch: validation runs before any heavy import and before any directory
is made.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from inktrace_train.errors import ConfigError

CONFIG_VERSION = 1  # bump when a key is renamed or its meaning changes; stored in checkpoints
PIPELINE = ("structural", "dense")  # stage order; `stage=all` runs them in this order
DATA_SOURCES = ("kanjivg", "synthetic", "hanzi", "mixed", "strokes", "custom")
BRUSH_SOURCES = ("hanzi", "mixed")  # sources with brush outlines: the device renderer draws pen ink only
HANZI_FETCH = "npm pack hanzi-writer-data@2.0.1"
RENDERERS = ("auto", "cpu", "device")
PEN_WIDTH_SAMPLING = ("uniform", "log_uniform")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class ModelConfig:
    embed_dim: int = 128  # width of the 8x8 token grid seen by the transformer
    num_layers: int = 4  # pre-norm transformer layers
    num_heads: int = 4  # attention heads; must divide embed_dim
    mlp_ratio: float = 4.0  # transformer MLP hidden width = mlp_ratio * embed_dim
    dropout: float = 0.0  # dropout inside the transformer layers
    stem_channels: List[int] = field(default_factory=lambda: [16, 32, 64])  # one stride-2 conv stage each
    decoder_channels: List[int] = field(default_factory=lambda: [64, 32, 16])  # U-Net decoder, coarse to fine
    full_heads: bool = False  # add the dense heads (keypoints, width, offset) to the structural ones


@dataclass
class StageConfig:
    name: str = "structural"  # a stage of PIPELINE, or "all" to run `pipeline` in order in one run
    init_from: Optional[str] = None  # checkpoint file or run directory to take initial weights from
    pipeline: List[str] = field(default_factory=lambda: list(PIPELINE))  # stages `stage=all` runs, in order
    overrides: Dict[str, List[str]] = field(  # per-stage overrides inside `stage=all`
        default_factory=lambda: {name: [] for name in PIPELINE}
    )
    allow_shape_mismatch: List[str] = field(default_factory=list)  # fnmatch patterns of params init_from may skip


@dataclass
class LossWeights:
    skeleton: float = 1.0  # BCE + soft Dice on the 1-px skeleton
    tangent: float = 0.5  # MSE of (cos 2θ, sin 2θ) on skeleton pixels
    ink: float = 0.5  # BCE of the ink reconstruction (the masked-input pretext task)
    keypoints: float = 1.0  # focal loss (CenterNet) on the endpoint / junction heat maps (dense heads)
    width: float = 0.2  # L1 of the half-width, in pixels, on ink pixels (dense heads)
    offset: float = 0.2  # L1 of the offset to the nearest centerline, in pixels (dense heads)


@dataclass
class TrainingConfig:
    lr: float = 1e-3  # peak AdamW learning rate, reached after warmup
    batch_size: int = 32  # samples per optimizer micro-step
    epochs: int = 50  # epochs of data.train_samples samples each
    save_interval: int = 5  # write checkpoint_epoch_NNNN.pth every this many epochs
    keep_last_n: int = 3  # periodic checkpoints kept; best and latest are never deleted
    save_every_n_steps: Optional[int] = None  # also refresh checkpoint_latest.pth this often (long epochs)
    weight_decay: float = 1e-4  # AdamW decay; not applied to norms, biases and the mask token
    mask_ratio: float = 0.0  # fraction of 8x8 input patches hidden from the model (stage sets it)
    seed: int = 0  # every random draw (init, data, augmentation, masks) derives from it
    device: str = "auto"  # auto picks cuda > mps > cpu
    log_every_n_steps: int = 20  # read losses from the device and log them this often
    warmup_epochs: float = 1.0  # linear warmup length before the cosine decay
    final_lr_ratio: float = 0.01  # cosine decays to lr * final_lr_ratio at the last step
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 disables clipping
    grad_accum_steps: int = 1  # micro-batches accumulated per optimizer step
    ema_decay: float = 0.0  # moving average of the weights (~1/(1-decay) steps), validated and traced; 0: off
    precision: str = "auto"  # auto: bf16 (or fp16) autocast on CUDA, fp32 elsewhere
    compile: Optional[bool] = None  # torch.compile the training forward/backward; null: on for CUDA only
    channels_last: Optional[bool] = None  # NHWC memory format for the convolutions; null: on for CUDA only
    auto_resume: bool = False  # a run directory that holds this run already is resumed, not refused (requeues)
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class DataConfig:
    source: str = "kanjivg"  # kanjivg (pen), hanzi (brush), mixed (both), synthetic, strokes (data.path) or custom
    hanzi_dir: Optional[str] = None  # hanzi-writer-data 2.0.1: the .tgz of `npm pack` or its folder (hanzi, mixed)
    path: Optional[str] = None  # strokes: a .svg/.inkml/.ndjson file or a folder of them (searched recursively)
    extra_path: Optional[str] = None  # stroke files (as data.path) interleaved half and half with any source
    font_ink: Optional[str] = None  # fonts' glyphs as training ink (scripts/font_ink.py); training split only
    font_ink_share: Optional[float] = None  # share of training glyphs from data.font_ink, 0.01-0.99; None: equal
    source_target: Optional[str] = None  # custom: package.module.Class implementing GlyphSource (docs/data.md)
    source_args: Dict[str, Any] = field(default_factory=dict)  # custom: keyword arguments of that class
    img_size: int = 64  # rendered image side, pixels; divisible by 2**len(model.stem_channels)
    num_workers: int = 2  # data-loader processes; capped at the cores available
    renderer: str = "auto"  # cpu: workers draw the targets; device: the training device does; auto: device on CUDA
    train_samples: int = 4096  # samples per training epoch, freshly augmented each epoch
    val_samples: int = 512  # fixed validation images (the same every epoch)
    val_fraction: float = 0.05  # share of glyph keys (KanjiVG: codepoints) held out for choosing the best checkpoint
    test_fraction: float = 0.05  # share of glyph keys (KanjiVG: codepoints) held out for final evaluation only
    cache_dir: Optional[str] = None  # parsed KanjiVG, hanzi and stroke-file caches; None: the user cache directory
    rotation_deg: float = 10.0  # augmentation: uniform rotation in [-rotation_deg, rotation_deg]
    scale_min: float = 0.75  # augmentation: glyph scale, as a fraction of the canvas
    scale_max: float = 0.95  # augmentation: upper bound of the glyph scale
    shear: float = 0.15  # augmentation: uniform shear factor in [-shear, shear]
    shift: float = 0.05  # augmentation: shift, as a fraction of the canvas, beyond centring
    wobble: float = 0.4  # augmentation: amplitude, pixels, of the low-frequency per-stroke wobble
    angular: float = 0.0  # share of pen glyphs whose curves are straightened into corners, as printed fonts draw hooks
    pen_width_min: float = 0.8  # augmentation: narrowest full pen width, pixels
    pen_width_max: float = 10.0  # augmentation: widest full pen width, pixels (at most img_size / 4)
    pen_width_sampling: str = "log_uniform"  # a glyph's pen width in that range: uniform, or log_uniform
    pen_pressure: float = (
        0.0  # share of pen glyphs whose width varies along each stroke (swelling, tapering); data/pen.py
    )
    pen_taper: float = 0.3  # a pressure stroke's ends thin down to this fraction of its widest width, in (0, 1]
    pen_nib: float = 0.0  # share of pen glyphs drawn with a broad nib: width depends on the stroke's direction
    pen_flat_caps: float = 0.0  # share of pen glyphs whose strokes end flat (butt) instead of round
    outline_ink: float = 0.0  # share of pen glyphs drawn as filled outlines with mitred corners; cpu renderer only
    hairlines: float = 0.3  # share of glyphs with faint hairlines joining consecutive strokes (ink only, no targets)
    hairline_gap: float = 0.5  # in such a glyph, the chance of a hairline at each gap between consecutive strokes
    hairline_width_min: float = 0.3  # narrowest full width of a hairline, pixels
    hairline_width_max: float = 0.8  # widest full width of a hairline, pixels (at most 2)
    hairline_intensity_min: float = 0.15  # faintest hairline darkness (ink coverage at its centre, for a wide one)
    hairline_intensity_max: float = 0.45  # darkest hairline (at most 1: a full-ink join, as a cursive hand's)
    cursive_joins: float = 0.0  # share of pen glyphs joined stroke to stroke in full ink at the pen's width (ink only)
    degrade: float = 0.5  # share of inputs made scan-like (blur, noise, specks, faint/broken ink); data/degrade.py
    max_strokes: int = 6  # synthetic source: 1..max_strokes Bezier strokes per image


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    resume: Optional[str] = None  # run directory or checkpoint to continue; `+resume=PATH`


def schema_keys(node: Any = Config, prefix: str = "") -> List[str]:
    """Every leaf key of the schema as a dotted path, e.g. ``training.loss_weights.ink``."""
    keys: List[str] = []
    for f in fields(node):
        default = f.default_factory() if callable(f.default_factory) else f.default
        path = f"{prefix}{f.name}"
        if is_dataclass(default):
            keys.extend(schema_keys(type(default), path + "."))
        else:
            keys.append(path)
    return keys


def dict_keys() -> List[str]:
    """Schema keys whose value is a free-form dict (its sub-keys are not fixed by the schema)."""
    return ["stage.overrides", "data.source_args"]


def is_known(key: str, known: List[str]) -> bool:
    """Whether ``key`` is a schema key, a section of them, or inside a free-form dict key."""
    return (
        key in known or any(k.startswith(key + ".") for k in known) or any(key.startswith(k + ".") for k in dict_keys())
    )


def override_key(override: str) -> str:
    """The key (or group) a command-line override sets: ``+training.lr=1`` -> ``training.lr``."""
    return override.lstrip("+~").partition("=")[0]


def nearest_key(key: str) -> Optional[str]:
    """The schema key closest to a misspelt one, or None when nothing is close."""
    candidates = schema_keys()
    sections = sorted({k.rsplit(".", 1)[0] for k in candidates if "." in k})
    match = difflib.get_close_matches(key, candidates + sections, n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_key_message(key: str) -> str:
    hint = nearest_key(key)
    if hint and key.startswith(hint + "."):  # the section exists, the key in it does not: name its keys
        keys = [k[len(hint) + 1 :] for k in schema_keys() if k.startswith(hint + ".")]
        if not keys:
            return f"unknown config key '{key}': {hint} is a value, not a section: set it with {hint}=..."
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        return f"unknown config key '{key}': {hint} has no key '{key[len(hint) + 1 :]}'; its keys: {shown}"
    allowed = f"did you mean '{hint}'?" if hint else "see `python -m inktrace_train --help`"
    return f"unknown config key '{key}': {allowed}"


def _check(errors: List[str], ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        errors.append(f"{key}={value!r} is out of range: {allowed}")


# Fields that shape the backbone: a mismatch makes the weights meaningless.
BACKBONE_FIELDS = ("embed_dim", "num_layers", "num_heads", "mlp_ratio", "stem_channels", "decoder_channels")


def backbone_diffs(source: Dict[str, Any], model_cfg: Dict[str, Any], img_size: int) -> List[str]:
    """Every backbone field whose value differs between ``source`` (a stored config, as plain
    containers: what weights were trained with) and the model about to take them."""
    theirs = dict(source.get("model", {}), img_size=source.get("data", {}).get("img_size"))
    ours = dict(model_cfg, img_size=img_size)
    return [
        f"{'data.img_size' if k == 'img_size' else f'model.{k}'} {theirs[k]!r} vs {ours[k]!r}"
        for k in BACKBONE_FIELDS + ("img_size",)
        if theirs.get(k) is not None and _plain(theirs[k]) != _plain(ours[k])
    ]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def validate(cfg: Config) -> None:
    """Check ranges and cross-field rules; raise ConfigError listing every problem."""
    m, t, d = cfg.model, cfg.training, cfg.data
    e: List[str] = []
    _check(e, t.lr > 0 and math.isfinite(t.lr), "training.lr", t.lr, "must be > 0")
    _check(e, t.batch_size >= 1, "training.batch_size", t.batch_size, "must be >= 1")
    _check(e, t.epochs >= 1, "training.epochs", t.epochs, "must be >= 1")
    _check(e, t.save_interval >= 1, "training.save_interval", t.save_interval, "must be >= 1")
    _check(e, t.keep_last_n >= 1, "training.keep_last_n", t.keep_last_n, "must be >= 1")
    _check(
        e,
        t.save_every_n_steps is None or t.save_every_n_steps >= 1,
        "training.save_every_n_steps",
        t.save_every_n_steps,
        "null (off) or >= 1",
    )
    _check(e, t.weight_decay >= 0, "training.weight_decay", t.weight_decay, "must be >= 0")
    _check(e, 0 <= t.mask_ratio < 1, "training.mask_ratio", t.mask_ratio, "must be in [0, 1)")
    _check(e, t.log_every_n_steps >= 1, "training.log_every_n_steps", t.log_every_n_steps, "must be >= 1")
    _check(e, t.warmup_epochs >= 0, "training.warmup_epochs", t.warmup_epochs, "must be >= 0")
    _check(e, 0 <= t.final_lr_ratio <= 1, "training.final_lr_ratio", t.final_lr_ratio, "must be in [0, 1]")
    _check(e, t.grad_clip >= 0, "training.grad_clip", t.grad_clip, "must be >= 0 (0 disables)")
    _check(e, t.grad_accum_steps >= 1, "training.grad_accum_steps", t.grad_accum_steps, "must be >= 1")
    _check(e, 0 <= t.ema_decay < 1, "training.ema_decay", t.ema_decay, "must be in [0, 1) (0 turns it off)")
    _check(e, t.device in DEVICES, "training.device", t.device, f"one of {', '.join(DEVICES)}")
    _check(e, t.precision in PRECISIONS, "training.precision", t.precision, f"one of {', '.join(PRECISIONS)}")
    for name in schema_keys(type(t.loss_weights)):
        w = getattr(t.loss_weights, name)
        _check(e, w >= 0, f"training.loss_weights.{name}", w, "must be >= 0")
    _check(e, m.embed_dim >= 1, "model.embed_dim", m.embed_dim, "must be >= 1")
    _check(e, m.num_layers >= 0, "model.num_layers", m.num_layers, "must be >= 0")
    _check(
        e,
        m.num_heads >= 1 and m.embed_dim % max(m.num_heads, 1) == 0,
        "model.num_heads",
        m.num_heads,
        f"must be >= 1 and divide model.embed_dim={m.embed_dim}",
    )
    _check(e, m.mlp_ratio > 0, "model.mlp_ratio", m.mlp_ratio, "must be > 0")
    _check(e, 0 <= m.dropout < 1, "model.dropout", m.dropout, "must be in [0, 1)")
    _check(
        e,
        len(m.stem_channels) >= 1 and all(c >= 1 for c in m.stem_channels),
        "model.stem_channels",
        m.stem_channels,
        "one or more positive widths",
    )
    _check(
        e,
        len(m.decoder_channels) == len(m.stem_channels) and all(c >= 1 for c in m.decoder_channels),
        "model.decoder_channels",
        m.decoder_channels,
        f"{len(m.stem_channels)} positive widths, one per stem stage",
    )
    factor = 2 ** len(m.stem_channels)
    _check(
        e,
        d.img_size >= factor and d.img_size % factor == 0,
        "data.img_size",
        d.img_size,
        f"a positive multiple of {factor} (2 ** len(model.stem_channels))",
    )
    _check(e, d.source in DATA_SOURCES, "data.source", d.source, f"one of {', '.join(DATA_SOURCES)}")
    _check(e, d.renderer in RENDERERS, "data.renderer", d.renderer, f"one of {', '.join(RENDERERS)}")
    if d.source in BRUSH_SOURCES and d.hanzi_dir is None:
        e.append(
            f"data.source={d.source} needs data.hanzi_dir: get the data with `{HANZI_FETCH}` and pass"
            " data.hanzi_dir=PATH (the .tgz, or the folder it unpacks to)"
        )
    _check_own_data(e, d)
    if d.source in BRUSH_SOURCES and d.renderer == "device":
        e.append(f"data.renderer=device draws pen ink only; data.source={d.source} has brush outlines: use cpu or auto")
    if d.font_ink_share is not None:
        _check(
            e,
            0.01 <= d.font_ink_share <= 0.99,
            "data.font_ink_share",
            d.font_ink_share,
            "a share of glyphs in [0.01, 0.99] (taken as the nearest fraction of denominator <= 100)",
        )
        if d.font_ink is None:
            e.append("data.font_ink_share is the share of data.font_ink's glyphs: set data.font_ink=FILE too")
    if d.font_ink is not None and d.renderer == "device":
        e.append(f"data.renderer=device draws pen ink only; data.font_ink={d.font_ink} is outlines: use cpu or auto")
    if d.outline_ink > 0 and d.renderer == "device":
        e.append(
            f"data.renderer=device sweeps pen ink only; data.outline_ink={d.outline_ink} fills outlines: "
            "use data.renderer=cpu or auto, or data.outline_ink=0"
        )
    _check(e, 0 <= d.degrade <= 1, "data.degrade", d.degrade, "a share of inputs, in [0, 1]")
    _check(e, d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
    _check(
        e,
        d.train_samples >= t.batch_size,
        "data.train_samples",
        d.train_samples,
        f"must be >= training.batch_size={t.batch_size}",
    )
    _check(e, d.val_samples >= 1, "data.val_samples", d.val_samples, "must be >= 1")
    _check(e, 0 < d.val_fraction < 1, "data.val_fraction", d.val_fraction, "must be in (0, 1)")
    _check(
        e,
        0 <= d.test_fraction < 1 - d.val_fraction,
        "data.test_fraction",
        d.test_fraction,
        "must be in [0, 1 - data.val_fraction)",
    )
    _check(e, 0 <= d.rotation_deg <= 180, "data.rotation_deg", d.rotation_deg, "must be in [0, 180]")
    _check(
        e,
        0 < d.scale_min <= d.scale_max <= 1.5,
        "data.scale_min",
        (d.scale_min, d.scale_max),
        "need 0 < scale_min <= scale_max <= 1.5",
    )
    _check(e, 0 <= d.shear < 1, "data.shear", d.shear, "must be in [0, 1)")
    _check(e, 0 <= d.shift < 0.5, "data.shift", d.shift, "must be in [0, 0.5)")
    _check(e, d.wobble >= 0, "data.wobble", d.wobble, "must be >= 0")
    _validate_pen(e, d)
    _check(e, d.max_strokes >= 1, "data.max_strokes", d.max_strokes, "must be >= 1")
    st = cfg.stage
    _check(e, st.name in PIPELINE + ("all",), "stage.name", st.name, f"one of {', '.join(PIPELINE)}, all")
    _check(
        e,
        bool(st.pipeline) and list(st.pipeline) == [s for s in PIPELINE if s in st.pipeline],
        "stage.pipeline",
        st.pipeline,
        f"distinct stages out of {', '.join(PIPELINE)}, in that order (each starts from the one before)",
    )
    _check(
        e,
        set(st.overrides) <= set(PIPELINE),
        "stage.overrides",
        sorted(st.overrides),
        f"keys out of {', '.join(PIPELINE)}",
    )
    if cfg.stage.name == "dense" and not m.full_heads:
        e.append("model.full_heads=False is not allowed with stage.name=dense: the dense stage trains all heads")
    if e:
        raise ConfigError("; ".join(e))


_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _check_own_data(e: List[str], d: DataConfig) -> None:
    """data=strokes needs data.path, data=custom a class; neither key means anything elsewhere."""
    if d.source == "strokes" and not d.path:
        e.append("data.source=strokes needs data.path=PATH: a .svg, .inkml or .ndjson file, or a folder of them")
    if d.path is not None and d.source != "strokes":
        e.append(
            f"data.path is read by data=strokes only; to add your strokes to data.source={d.source} use data.extra_path"
        )
    if d.source == "custom" and not d.source_target:
        e.append("data.source=custom needs data.source_target=package.module.Class (a GlyphSource: docs/data.md)")
    if (d.source_target is not None or d.source_args) and d.source != "custom":
        e.append("data.source_target and data.source_args are read by data=custom only: add data=custom")
    if d.source_target and not _TARGET.fullmatch(d.source_target):
        e.append(f"data.source_target={d.source_target!r} is not a dotted path like package.module.Class")


def _validate_pen(e: List[str], d: DataConfig) -> None:
    """The pen options of ``data``: ranges, shares in [0, 1]."""
    _check(
        e,
        0 < d.pen_width_min <= d.pen_width_max <= d.img_size / 4,
        "data.pen_width_min",
        (d.pen_width_min, d.pen_width_max),
        f"need 0 < pen_width_min <= pen_width_max <= data.img_size / 4 = {d.img_size / 4:g}",
    )
    _check(
        e,
        d.pen_width_sampling in PEN_WIDTH_SAMPLING,
        "data.pen_width_sampling",
        d.pen_width_sampling,
        f"one of {', '.join(PEN_WIDTH_SAMPLING)}",
    )
    for name in (
        "angular",
        "pen_pressure",
        "pen_nib",
        "pen_flat_caps",
        "outline_ink",
        "hairlines",
        "hairline_gap",
        "cursive_joins",
    ):
        value = getattr(d, name)
        _check(e, 0 <= value <= 1, f"data.{name}", value, "a share, in [0, 1]")
    _check(e, 0 < d.pen_taper <= 1, "data.pen_taper", d.pen_taper, "a fraction of the widest width, in (0, 1]")
    _check(
        e,
        0 < d.hairline_width_min <= d.hairline_width_max <= 2,
        "data.hairline_width_min",
        (d.hairline_width_min, d.hairline_width_max),
        "need 0 < hairline_width_min <= hairline_width_max <= 2 (pixels: hairlines are thin)",
    )
    _check(
        e,
        0 < d.hairline_intensity_min <= d.hairline_intensity_max <= 1,
        "data.hairline_intensity_min",
        (d.hairline_intensity_min, d.hairline_intensity_max),
        "need 0 < hairline_intensity_min <= hairline_intensity_max <= 1 (ink coverage at a hairline's centre)",
    )


def _unknown_keys(node: Any, prefix: str, known: List[str]) -> List[str]:
    found = []
    for key in node:
        path = f"{prefix}{key}"
        if not is_known(path, known):
            found.append(path)
        elif isinstance(node[key], DictConfig) and path not in dict_keys():
            found.extend(_unknown_keys(node[key], path + ".", known))
    return found


def to_config(cfg: DictConfig) -> Config:
    """Validate a composed config (without its ``hydra`` node) and return it typed.

    Raises:
        ConfigError: an unknown key (also one added with ``+``), a range or a rule.
    """
    cfg = cfg.copy()
    with_hydra = "hydra" in cfg
    if with_hydra:
        OmegaConf.set_struct(cfg, False)
        del cfg["hydra"]
    unknown = _unknown_keys(cfg, "", schema_keys())
    if unknown:
        raise ConfigError("; ".join(unknown_key_message(k) for k in unknown))
    typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), cfg))
    assert isinstance(typed, Config)
    validate(typed)
    return typed


def apply_changes(cfg: Any, changes: Dict[str, Any]) -> Config:
    """``cfg`` (a Config, a DictConfig or plain containers) with dotted-key changes
    (``{"training.epochs": 5}``) applied, validated and typed again."""
    node = OmegaConf.structured(cfg) if is_dataclass(cfg) else OmegaConf.create(cfg)
    for key, value in changes.items():
        OmegaConf.update(node, key, value)
    return to_config(node)


def flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """Nested dicts as dotted keys: ``{"model": {"embed_dim": 32}}`` -> ``{"model.embed_dim": 32}``.
    An empty dict is a leaf (so ``stage.overrides`` of a run with none still shows)."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out

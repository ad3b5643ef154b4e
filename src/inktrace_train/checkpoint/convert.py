"""One converter from the older checkpoint layouts to format version 1.

The two old scripts wrote: a bare ``state_dict``; a dict keyed ``model`` /
``optimizer`` / ``scheduler`` (the dense script); and unversioned dicts with
``model_state_dict`` beside flat config keys (``embed_dim``, ``lr``, ...).
Whatever a file lacks is listed, so the caller can say what will start fresh.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Tuple

import torch

from inktrace_train.config.schema import PIPELINE

FORMAT_VERSION = 1

# Flat keys of the old scripts -> (section, key) in the Config schema.
FLAT_KEYS = {
    "embed_dim": ("model", "embed_dim"),
    "num_layers": ("model", "num_layers"),
    "num_heads": ("model", "num_heads"),
    "stem_channels": ("model", "stem_channels"),
    "decoder_channels": ("model", "decoder_channels"),
    "full_heads": ("model", "full_heads"),
    "lr": ("training", "lr"),
    "batch_size": ("training", "batch_size"),
    "epochs": ("training", "epochs"),
    "weight_decay": ("training", "weight_decay"),
    "mask_ratio": ("training", "mask_ratio"),
    "seed": ("training", "seed"),
    "img_size": ("data", "img_size"),
}
# Entries a resume needs; a converted file lacking them starts those parts fresh.
RESUME_ENTRIES = ("optimizer_state_dict", "scheduler_state_dict", "epoch", "global_step", "config")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _flat_config(obj: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    config: Dict[str, Dict[str, Any]] = {}
    for old, (section, key) in FLAT_KEYS.items():
        if old in obj:
            config.setdefault(section, {})[key] = obj[old]
    stage = obj.get("stage")
    if stage in PIPELINE or stage in (1, 2, "1", "2"):
        config.setdefault("stage", {})["name"] = stage if stage in PIPELINE else PIPELINE[int(stage) - 1]
    return config


def layout_of(obj: Any) -> str:
    """Which layout a loaded object has: ``v1``, ``bare``, ``model-dict``, ``flat`` or ``unknown``."""
    if isinstance(obj, dict) and isinstance(obj.get("version"), int):
        return "v1"
    if _is_state_dict(obj):
        return "bare"
    if isinstance(obj, dict) and _is_state_dict(obj.get("model")):
        return "model-dict"
    if isinstance(obj, dict) and _is_state_dict(obj.get("model_state_dict")):
        return "flat"
    return "unknown"


def upgrade(obj: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Convert an older checkpoint to format version 1.

    Returns:
        (checkpoint, missing): the v1 dict, and the RESUME_ENTRIES the file did not have
        (they are None in the result, or a partial ``config`` holding what was there).
    """
    layout = layout_of(obj)
    if layout == "v1":
        return obj, []
    if layout == "unknown":
        raise ValueError(
            "not a checkpoint: no model weights found (expected a state_dict, "
            "a dict with 'model', or one with 'model_state_dict')"
        )
    old = {} if layout == "bare" else obj
    config = old.get("config") if isinstance(old.get("config"), dict) else _flat_config(old) or None
    converted = {
        "version": FORMAT_VERSION,
        "epoch": old.get("epoch"),
        "global_step": old.get("global_step"),
        "model_state_dict": obj if layout == "bare" else obj.get("model", obj.get("model_state_dict")),
        "optimizer_state_dict": old.get("optimizer", old.get("optimizer_state_dict")),
        "scheduler_state_dict": old.get("scheduler", old.get("scheduler_state_dict")),
        "scaler_state_dict": None,
        "metric": old.get("metric", old.get("best_metric")),
        "best_metric": old.get("best_metric", old.get("metric")),
        "config": config,
        "metadata": {"stage": (config or {}).get("stage", {}).get("name"), "converted_from": layout},
        "timestamp": old.get("timestamp"),
        "rng_state": None,
    }
    missing = [k for k in RESUME_ENTRIES if converted[k] is None]
    return converted, missing


def regroup_optimizer_state(
    old: Dict[str, Any], optimizer: torch.optim.Optimizer, parameters: List[torch.nn.Parameter]
) -> Dict[str, Any]:
    """An optimizer state_dict saved with one parameter group (the old scripts), mapped onto
    ``optimizer``'s groups (decay / no decay). Old state ids follow ``model.parameters()``.

    Raises:
        ValueError: the layouts cannot be matched (a different number of parameters).
    """
    if len(old["param_groups"]) == len(optimizer.param_groups):
        return old
    old_ids = [i for g in old["param_groups"] for i in g["params"]]
    if len(old["param_groups"]) != 1 or len(old_ids) != len(parameters):
        raise ValueError(
            f"{len(old['param_groups'])} parameter groups of {len(old_ids)} parameters "
            f"do not map onto {len(optimizer.param_groups)} groups of {len(parameters)}"
        )
    position = {id(p): i for i, p in enumerate(parameters)}
    new = optimizer.state_dict()
    state = {}
    for group, new_group in zip(optimizer.param_groups, new["param_groups"], strict=True):
        for p, new_id in zip(group["params"], new_group["params"], strict=True):
            old_id = old_ids[position[id(p)]]
            if old_id in old["state"]:
                state[new_id] = old["state"][old_id]
    return {"state": state, "param_groups": new["param_groups"]}


def completed_for_resume(
    ckpt: Any, optimizer_steps_per_epoch: int, optimizer: Any, scheduler: Any, parameters: List[torch.nn.Parameter]
) -> Any:
    """A checkpoint (older layouts, converted by :func:`upgrade`) made whole for a resume, as a
    copy: its optimizer state mapped onto today's parameter groups, its optimizer step counted
    from its epochs when it kept none, and a schedule it did not keep fast-forwarded to that step.
    A complete file comes back as it is. What it lacks altogether (AdamW moments, random
    generators) stays None: those start fresh. ``parameters``: the model's, in its own order
    (the old files' optimizer state follows it).

    Raises:
        ValueError: its optimizer state cannot be mapped onto ``optimizer``.
    """
    step = ckpt.global_step
    if step is None:
        step = (ckpt.epoch or 0) * optimizer_steps_per_epoch
    optimizer_state = ckpt.optimizer_state_dict
    if optimizer_state is not None:
        optimizer_state = regroup_optimizer_state(optimizer_state, optimizer, parameters)
    schedule = ckpt.scheduler_state_dict
    if schedule is None and step:
        scheduler.fast_forward(step)
        schedule = scheduler.state_dict()
    if (step, optimizer_state, schedule) == (ckpt.global_step, ckpt.optimizer_state_dict, ckpt.scheduler_state_dict):
        return ckpt
    return replace(ckpt, global_step=step, optimizer_state_dict=optimizer_state, scheduler_state_dict=schedule)

"""The torch device a model runs on, named as the user wrote it (``training.device``, ``--device``):
one that this machine lacks, or no device at all, is one line naming the setting."""

from __future__ import annotations

import torch

from inktrace_train.errors import ConfigError

NAMES = "cpu, cuda, cuda:N, mps or auto"


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(name: str, setting: str = "training.device") -> torch.device:
    """``name`` as a torch device; ``auto`` is the best this machine has. ``setting``: how the user
    gave it, for the message (``training.device``, ``--device``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    def given(value: str) -> str:  # as the user wrote it: --device cuda, training.device=cuda
        return f"{setting} {value}" if setting.startswith("--") else f"{setting}={value}"

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{given(name)} is not a device: use {NAMES}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"{given(name)}: this machine has no usable CUDA device (torch {torch.__version__}, {build}); "
            f"use {given('cpu')} or auto"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{given(name)}: this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not _mps_available():
        raise ConfigError(f"{given(name)}: this machine has no MPS device; use {given('cpu')} or auto")
    return device

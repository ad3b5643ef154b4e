"""A checkpoint's model as the Tracer's map function: PyTorch inference on batches of canvases."""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from inktrace_train.checkpoint.store import load_checkpoint
from inktrace_train.errors import ConfigError, ToolError, first_line
from inktrace_train.model.device import pick_device
from inktrace_train.model.export import InferenceGraph
from inktrace_train.model.network import InkTraceModel
from inktrace_train.run.rundir import best_checkpoint_of


class TorchMaps:
    """A checkpoint's model, in eval mode: ``(B, 1, S, S)`` float32 ink -> its maps by name,
    each ``(B, C, S, S)`` float32 numpy (see :class:`~inktrace_train.model.export.InferenceGraph`).

    Args:
        checkpoint: a checkpoint file, or a run directory (its last stage's best).
        device: torch device.
    """

    def __init__(self, checkpoint: str, device: str = "cpu") -> None:
        try:
            self.device = pick_device(device, "--device")  # before the checkpoint is read
        except ConfigError as e:
            raise ToolError(str(e), 2) from None
        ckpt = load_checkpoint(best_checkpoint_of(checkpoint))
        config = self.config = ckpt.config or {}
        if not config.get("model"):
            raise ToolError(f"{checkpoint}: the checkpoint holds no model config to rebuild the model from")
        self.size = int((config.get("data") or {}).get("img_size", 64))
        try:
            model = InkTraceModel(**config["model"])
            model.load_state_dict(ckpt.inference_weights())
        except (TypeError, ValueError, RuntimeError) as e:
            raise ToolError(
                f"{checkpoint}: its weights do not fit the model its config describes: {first_line(e)}"
            ) from None
        self.graph = InferenceGraph(model).to(self.device).eval()

    @torch.no_grad()
    def __call__(self, ink: np.ndarray) -> Dict[str, np.ndarray]:
        out = self.graph(torch.from_numpy(np.ascontiguousarray(ink, np.float32)).to(self.device))
        return {name: t.cpu().numpy() for name, t in zip(self.graph.output_names, out, strict=True)}

"""An exported model (``ckpt export --format onnx``) as the Tracer's map function, through
onnxruntime: no torch, no Hydra, no checkpoint (what an application ships)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from inktrace_train.errors import ToolError, first_line


class OnnxMaps:
    """``(B, 1, S, S)`` float32 ink -> the exported maps by name, each ``(B, C, S, S)``."""

    def __init__(self, path: str) -> None:
        if not Path(path).is_file():  # the more basic mistake first, with or without the extra
            raise ToolError(f"no such file: {path}", 2)
        try:
            import onnxruntime
        except ImportError:
            raise ToolError('--onnx needs onnxruntime: pip install -e ".[onnx]"') from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own classes, not exported under one base
            raise ToolError(f"{path}: not an ONNX model onnxruntime can load: {first_line(e)}") from None
        (inp,) = self.session.get_inputs()
        self.input_name = inp.name
        self.size = int(inp.shape[-1])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.config: dict = {}

    def __call__(self, ink: np.ndarray) -> Dict[str, np.ndarray]:
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(ink, np.float32)})
        return dict(zip(self.output_names, outs, strict=True))

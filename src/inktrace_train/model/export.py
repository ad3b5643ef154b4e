"""The inference graph (raster ink in, the maps the tracer reads out) and its export to ONNX.

One definition serves PyTorch inference (``evaluation.predictor``) and the exported file, so the
two cannot drift: the visibility channel is filled with ones (nothing hidden), logits become
probabilities, and the training-only outputs (``offset``) are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import nn

from inktrace_train.model.network import InkTraceModel

INPUT_NAME = "image"  # (batch, 1, size, size) float32 ink coverage in [0, 1] ("ink" names an output)
STRUCTURAL_OUTPUTS = ("skeleton", "ink", "tangent")  # probabilities, probabilities, (cos 2θ, sin 2θ)
DENSE_OUTPUTS = ("keypoints", "half_width")  # endpoint/junction probabilities, half pen width px
ONNX_OPSET = 17  # LayerNormalization is a single op from 17 on


class InferenceGraph(nn.Module):
    """``forward(ink)`` -> the maps of :data:`output_names`, each (B, C, H, W) float32."""

    def __init__(self, model: InkTraceModel) -> None:
        super().__init__()
        self.model = model
        self.output_names = STRUCTURAL_OUTPUTS + (DENSE_OUTPUTS if model.full_heads else ())

    def forward(self, ink: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        maps = output_maps(self.model(torch.cat([ink, torch.ones_like(ink)], 1)))
        return tuple(maps[name].float() for name in self.output_names)


def output_maps(out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The model's raw outputs -> the maps the tracer reads (probabilities where it reads them);
    ``keypoints`` and ``half_width`` where the model has the dense heads."""
    maps = {"skeleton": torch.sigmoid(out["skeleton"]), "ink": torch.sigmoid(out["ink"]), "tangent": out["tangent"]}
    if "keypoints" in out:
        maps["keypoints"] = torch.sigmoid(out["keypoints"])
        maps["half_width"] = out["width"]
    return maps


def export_onnx(graph: InferenceGraph, size: int, path: Path) -> None:
    """Write ``graph`` as ONNX to ``path``: input ``ink`` (batch, 1, size, size), the named maps
    out, the batch dimension dynamic. Needs the ``onnx`` package (the ``onnx`` extra)."""
    example = torch.zeros(2, 1, size, size)
    dynamic = {name: {0: "batch"} for name in (INPUT_NAME, *graph.output_names)}
    graph.eval()
    # The fused inference kernel of nn.TransformerEncoderLayer has no ONNX form: export the plain ops.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _export(graph, example, path, dynamic)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export(graph: InferenceGraph, example: torch.Tensor, path: Path, dynamic: dict) -> None:
    with torch.no_grad():
        # The TorchScript-based exporter: it needs only `onnx`, where torch.export's needs onnxscript too.
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(graph.output_names),
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )

"""``python -m inktrace_train.ckpt export CHECKPOINT --format onnx --out FILE``: the
inference graph (ink in, the maps the tracer reads out, dynamic batch) for use without this
package. The ONNX file is checked against the PyTorch model with onnxruntime when it is installed."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from inktrace_train.errors import ToolError, first_line
from inktrace_train.evaluation.predictor import TorchMaps
from inktrace_train.model.export import export_onnx

FORMATS = ("onnx",)  # TorchScript is deprecated from torch 2.10 on (torch.jit.load warns so)


def check_ink(size: int, n: int = 4) -> np.ndarray:
    """(n, 1, size, size) float32 canvases of a few random anti-aliased lines: a quick check input."""
    rng = np.random.default_rng(0)
    ink = np.zeros((n, size, size), np.uint8)
    for canvas in ink:
        for _ in range(4):
            a, b = rng.integers(8, size - 8, 2), rng.integers(8, size - 8, 2)
            cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, 2, cv2.LINE_AA)
    return ink[:, None].astype(np.float32) / 255.0


def largest_difference(model: TorchMaps, path: Path) -> float:
    """The largest absolute difference between the ONNX file's and the model's maps."""
    from inktrace_train.evaluation.onnxmaps import OnnxMaps

    ink = check_ink(model.size)
    want, got = model(ink), OnnxMaps(str(path))(ink)
    return max(float(np.abs(want[k] - got[k]).max()) for k in want)


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise ToolError(f"{out} is a directory: give a file path", 2)
    if out.exists() and not args.force:  # as convert, publish and average: nothing saved is lost
        raise ToolError(f"{out} exists: refusing to overwrite it (use --force)", 2)
    if not out.parent.is_dir():
        raise ToolError(f"no such directory: {out.parent}", 2)
    model = TorchMaps(args.file)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        export_onnx(model.graph, model.size, tmp)
        os.replace(tmp, out)
    except Exception as e:  # torch.onnx raises its own classes (a missing `onnx` package among them)
        tmp.unlink(missing_ok=True)
        hint = ' (pip install -e ".[onnx]")' if "onnx" in str(e) and "install" in str(e) else ""
        raise ToolError(f"{out}: export failed: {first_line(e)}{hint}") from None
    shape = f"(batch, 1, {model.size}, {model.size})"
    print(f"exported {args.file} -> {out} ({args.format}): image {shape} -> {', '.join(model.graph.output_names)}")
    try:
        print(f"onnxruntime check: largest difference from PyTorch {largest_difference(model, out):.2e}")
    except ToolError as e:
        print(f"(no onnxruntime check: {e})")
    return 0


def add_export(sub) -> None:
    s = sub.add_parser("export", help="write the inference graph as ONNX", description=__doc__)
    s.add_argument("file", metavar="CHECKPOINT", help="a checkpoint file or a run directory (its best)")
    s.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (the default and only format)")
    s.add_argument("--out", required=True, help="the file to write")
    s.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    s.set_defaults(run=cmd_export)

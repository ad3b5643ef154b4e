"""Image grids of predictions next to targets, for TensorBoard: one labelled row per map."""

from __future__ import annotations

from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch

from inktrace_train.evaluation.tracer import glyph_maps, trace_maps
from inktrace_train.model.export import output_maps

Tensor = torch.Tensor
LABEL_WIDTH = 190  # pixels of the label column
SCALE = 2  # grid pixels per image pixel, so that labels and traced strokes are legible


def _gray(x: Tensor) -> Tensor:
    """(N,1,H,W) in [0,1] -> (N,3,H,W)."""
    return x.clamp(0, 1).expand(-1, 3, -1, -1)


def _overlay(ink: Tensor, points: Tensor) -> Tensor:
    """Ink in gray, endpoints in red and junctions in green on top."""
    rgb = _gray(ink * 0.5)
    red = torch.maximum(rgb[:, 0], points[:, 0].clamp(0, 1))
    green = torch.maximum(rgb[:, 1], points[:, 1].clamp(0, 1))
    return torch.stack([red, green, rgb[:, 2]], dim=1)


def _traced(ink: Tensor, outputs: Dict[str, Tensor]) -> Tensor:
    """The predicted maps traced into strokes as ``predict`` traces them, each in its own colour
    over the ink."""
    tiles = []
    maps = glyph_maps({k: v.float().numpy() for k, v in output_maps(outputs).items()})
    for i, glyph in enumerate(maps):
        base = np.repeat((ink[i, 0].clamp(0, 1).numpy()[..., None] * 90).astype(np.uint8), 3, axis=2)
        big = cv2.resize(base, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)  # uint8: OpenCV draws on that
        for k, stroke in enumerate(trace_maps(glyph)):
            hue = np.uint8([[[(k * 47) % 180, 220, 255]]])
            colour = tuple(int(c) for c in cv2.cvtColor(hue, cv2.COLOR_HSV2RGB)[0, 0])
            pts = np.round(stroke.points * SCALE).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(big, [pts], False, colour, 1, cv2.LINE_AA)
        tiles.append(torch.from_numpy(big).permute(2, 0, 1).float() / 255)
    return torch.stack(tiles)


def _label(text: str, height: int) -> Tensor:
    strip = np.full((height, LABEL_WIDTH, 3), 255, np.uint8)
    cv2.putText(strip, text, (4, height // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return torch.from_numpy(strip).permute(2, 0, 1).float() / 255


def prediction_grid(batch: Dict[str, Tensor], outputs: Dict[str, Tensor], n: int = 8) -> Tensor:
    """One labelled row per map, one column per sample: the masked input (hidden patches
    tinted blue), ink target, predicted and target skeleton, predicted and target keypoints
    (with the dense heads), and the predicted maps traced into strokes. Returns a
    (3, H_total, W_total) float image in [0,1]."""
    b = {k: v[:n].detach().float().cpu() for k, v in batch.items()}
    o = {k: v[:n].detach().float().cpu() for k, v in outputs.items()}
    hidden = 1 - b["visible"]
    shown = _gray(b["image"][:, :1])
    shown = shown + torch.cat([torch.zeros_like(hidden), torch.zeros_like(hidden), hidden * 0.35], dim=1)
    rows: List[Tuple[str, Tensor]] = [
        ("input (hidden: blue)", shown.clamp(0, 1)),
        ("ink target", _gray(b["ink"])),
        ("skeleton predicted", _gray(torch.sigmoid(o["skeleton"]))),
        ("skeleton target", _gray(b["skeleton"])),
    ]
    if "keypoints" in o:
        rows += [
            ("ends red, junctions green: pred", _overlay(b["ink"], torch.sigmoid(o["keypoints"]))),
            ("ends red, junctions green: target", _overlay(b["ink"], b["keypoints"])),
        ]
    scaled = [(name, torch.nn.functional.interpolate(r, scale_factor=SCALE, mode="nearest")) for name, r in rows]
    scaled.append(("traced strokes", _traced(b["ink"], o)))
    lines = []
    for name, r in scaled:
        r = torch.nn.functional.pad(r, (1, 1, 1, 1), value=0.25)  # thin frame per tile
        line = torch.cat(list(r), dim=2)
        lines.append(torch.cat([_label(name, line.shape[1]), line], dim=2))
    return torch.cat(lines, dim=1)

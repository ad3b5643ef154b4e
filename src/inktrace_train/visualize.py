"""Image grids of predictions next to targets, for TensorBoard."""

from __future__ import annotations

from typing import Dict, List

import torch

Tensor = torch.Tensor


def _gray(x: Tensor) -> Tensor:
    """(N,1,H,W) in [0,1] -> (N,3,H,W)."""
    return x.clamp(0, 1).expand(-1, 3, -1, -1)


def _overlay(ink: Tensor, points: Tensor) -> Tensor:
    """Ink in gray, endpoints in red and junctions in green on top."""
    rgb = _gray(ink * 0.5)
    red = torch.maximum(rgb[:, 0], points[:, 0].clamp(0, 1))
    green = torch.maximum(rgb[:, 1], points[:, 1].clamp(0, 1))
    return torch.stack([red, green, rgb[:, 2]], dim=1)


def prediction_grid(batch: Dict[str, Tensor], outputs: Dict[str, Tensor], n: int = 8) -> Tensor:
    """Rows: input (hidden patches tinted blue), ink target, predicted skeleton,
    target skeleton, and with the dense heads predicted and target keypoints;
    one column per sample. Returns a (3, H_total, W_total) float image in [0,1].
    """
    b = {k: v[:n].detach().float().cpu() for k, v in batch.items()}
    o = {k: v[:n].detach().float().cpu() for k, v in outputs.items()}
    hidden = 1 - b["visible"]
    shown = _gray(b["image"][:, :1])
    shown = shown + torch.cat([torch.zeros_like(hidden), torch.zeros_like(hidden), hidden * 0.35], dim=1)
    rows: List[Tensor] = [shown.clamp(0, 1), _gray(b["ink"]), _gray(torch.sigmoid(o["skeleton"])), _gray(b["skeleton"])]
    if "keypoints" in o:
        rows += [_overlay(b["ink"], torch.sigmoid(o["keypoints"])), _overlay(b["ink"], b["keypoints"])]
    rows = [torch.nn.functional.pad(r, (1, 1, 1, 1), value=0.25) for r in rows]  # thin frame per tile
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)
    return grid

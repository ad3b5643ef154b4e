"""The device half of :mod:`.sweep`: the union of the centerline samples' capsules (pens whose
width varies, flat ends, hairlines), for a whole padded batch in torch, by the same formula.

Each sample inks the (2r + 1)^2 cells around its own; r is fixed when the renderer is built
(from the widest pen the config allows), since reading the batch's widest pen would be a host
sync. Cells are visited one window row at a time (2r + 1 steps, whatever the batch) to keep
the (B, M, 2r + 1) temporaries small; a scatter-max gathers them, off-canvas cells and padding
going to one trash element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

from inktrace_train.data.sweep import CUT_REACH

HAIRLINE = ("hair_points", "hair_tangents", "hair_lo", "hair_hi", "hair_half_width", "hair_intensity")  # a batch's
# hairline samples, padded to the glyph with the most (intensity 0: padding inks nothing)


@dataclass
class Capsules:
    """Per-sample (B, M) pieces of pen: centre ``points`` (B, M, 2), unit ``tangents`` (B, M, 2), the
    segment ``lo``..``hi`` along the tangent, ``half_width``, ``weight`` (intensity; 0 for padding).
    ``cut``: None, or (B, M, 2) bool (cut by the start's / the end's half-plane) with the planes
    ``start``, ``end`` (B, M, 2, 2): a point and the tangent pointing out of the stroke."""

    points: torch.Tensor
    tangents: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    half_width: torch.Tensor
    weight: torch.Tensor
    cut: Optional[torch.Tensor] = None
    start: Optional[torch.Tensor] = None
    end: Optional[torch.Tensor] = None


def sweep(c: Capsules, size: int, radius: int) -> torch.Tensor:
    """(B, 1, H, W) coverage: the max over samples of clip(h + 0.5 - distance to the segment, 0, 1),
    times the weight and any flat-end half-planes (see :mod:`.sweep`)."""
    b, m = c.half_width.shape
    device = c.points.device
    hw = size * size
    out = torch.zeros(b * hw + 1, device=device)
    if m == 0:
        return out[:-1].view(b, 1, size, size)
    cell = torch.floor(c.points).long()
    off = torch.arange(-radius, radius + 1, device=device)
    cx = cell[..., 0:1] + off  # (B, M, 2r+1)
    px, py = c.points[..., 0:1], c.points[..., 1:2]
    tx, ty = c.tangents[..., 0:1], c.tangents[..., 1:2]
    base = torch.arange(b, device=device).view(b, 1, 1) * hw
    for dy in range(-radius, radius + 1):
        cy = cell[..., 1:2] + dy
        x, y = cx + 0.5, cy + 0.5
        dx, dyy = x - px, y - py
        along = dx * tx + dyy * ty
        beyond = along - torch.minimum(torch.maximum(along, c.lo[..., None]), c.hi[..., None])
        perp = dyy * tx - dx * ty
        cover = torch.clamp(c.half_width[..., None] + 0.5 - torch.sqrt(beyond * beyond + perp * perp), 0.0, 1.0)
        if c.cut is not None:
            cover = cover * _half_planes(c, x, y)
        cover = cover * c.weight[..., None]
        inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
        pixel = torch.where(inside, base + cy * size + cx, b * hw)
        out.scatter_reduce_(0, pixel.flatten(), cover.flatten(), "amax")
    return out[:-1].view(b, 1, size, size)


def _half_planes(c: Capsules, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, M, 2r+1) factor of the flat ends' half-planes, 1 where a sample is not cut."""
    factor = torch.ones_like(x)
    for k, plane in enumerate((c.start, c.end)):
        ex, ey, tx, ty = plane[..., 0, 0:1], plane[..., 0, 1:2], plane[..., 1, 0:1], plane[..., 1, 1:2]
        half = torch.clamp(0.5 - ((x - ex) * tx + (y - ey) * ty), 0.0, 1.0)
        factor = torch.where(c.cut[..., k : k + 1], factor * half, factor)
    return factor


def pen_capsules(g, batch: Dict[str, torch.Tensor]) -> Capsules:
    """Each centerline sample's piece of pen, with the flat ends' half-planes (:mod:`.sweep`).

    Args:
        g: the batch's glyphs (the device renderer's ``_Glyphs``).
        batch: the batch (its ``flat_caps`` per glyph).
    """
    valid = g.stroke >= 0
    length = g.per_sample(g.stroke_len)
    half = g.per_sample(g.stroke_len / (g.count - 1).clamp(min=1)) / 2
    lo, hi = -torch.minimum(half, g.arc), torch.minimum(half, length - g.arc)
    t_first = g.tangents.gather(1, g.first.clamp(0, max(g.m - 1, 0))[..., None].expand(-1, -1, 2))
    t_last = g.tangents.gather(1, g.last[..., None].expand(-1, -1, 2))
    start = torch.stack([g.stroke_point(g.first), -t_first], -2)  # (B, S, 2, 2): point, outward tangent
    end = torch.stack([g.stroke_point(g.last), t_last], -2)
    cutting = g.per_sample((batch["flat_caps"] > 0.5) & ~g.closed()) & valid
    reach = g.half_width + CUT_REACH
    cut = torch.stack([cutting & (g.arc < reach), cutting & (length - g.arc < reach)], -1)
    return Capsules(
        g.points, g.tangents, lo, hi, g.half_width, valid.float(), cut, g.per_sample(start), g.per_sample(end)
    )


def hairline_capsules(batch: Dict[str, torch.Tensor]) -> Capsules:
    """The hairline samples' pieces of pen (round ends, each at its intensity)."""
    b = {k: batch[k].float() for k in HAIRLINE}
    return Capsules(
        b["hair_points"], b["hair_tangents"], b["hair_lo"], b["hair_hi"], b["hair_half_width"], b["hair_intensity"]
    )


__all__ = ["HAIRLINE", "Capsules", "hairline_capsules", "pen_capsules", "sweep"]

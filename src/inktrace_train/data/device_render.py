"""The device renderer (``data.renderer=device``): the training device draws every target.

Data-loader workers only pick and augment glyphs and sample their centerlines
(:class:`~.device_batch.Centerlines`, every <= 0.35 px, numpy); :func:`~.device_batch.collate_centerlines`
pads them into one batch; :class:`DeviceRenderer` turns that batch, on the training
device, into the same targets as the CPU :class:`~inktrace_train.data.render.Renderer`
-- in torch, for the whole batch at once: no Python loop over samples, strokes or
pixels, no boolean indexing, no host sync. Dynamic sizes never reach the device:
everything addressed out of range goes to one spare "trash" element.

Cost does not grow with the stroke count except in one place (junctions dilate
each stroke's skeleton; B x S x 64 x 64 values). Each pixel's nearest centerline
point comes from a jump-flooding pass (log2(size) + 1 sweeps of 9 candidates)
seeded with each skeleton pixel's representative sample, refined by the CPU
renderer's foot-of-perpendicular walk along the samples. Swept pens and hairlines
(:mod:`.device_sweep`) scatter each sample's capsule into a fixed window around it.

Equivalence with the CPU renderer (``tests/test_device_render.py``) is stated
per target there and in the README.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import cv2
import torch
import torch.nn.functional as F

from inktrace_train.data import degrade, device_sweep
from inktrace_train.data.centerline import CLOSED_GAP
from inktrace_train.data.device_sweep import hairline_capsules, pen_capsules
from inktrace_train.data.render import INK_THRESHOLD, JUNCTION_RADIUS, REFINE, SPOT_FLOOR, SPOT_RADIUS, TARGET_CHANNELS
from inktrace_train.data.sweep import window

LABEL_SWEEPS = 24  # min-label + pointer-jumping sweeps of the junction regions' connected components


def _spot_profile(device: torch.device) -> torch.Tensor:
    d = torch.arange(-SPOT_RADIUS, SPOT_RADIUS + 1, device=device, dtype=torch.float32)
    return torch.exp(-0.5 * d * d)


def _disk(device: torch.device) -> torch.Tensor:
    """The CPU renderer's structuring element (OpenCV's ellipse of radius JUNCTION_RADIUS)."""
    r = JUNCTION_RADIUS
    return torch.from_numpy(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).float().to(device)


class DeviceRenderer:
    """Render a :func:`collate_centerlines` batch into image, visible and every target.

    Args:
        img_size: side of the square output, pixels.
        sweep_half_width: the widest half width of a pen whose ink is swept sample by sample (width
            varying along its strokes, flat ends: :mod:`.device_sweep`); None when the data has no
            such pen (its glyphs would then be drawn as constant round pens).
        hairline_half_width: the widest half width of a hairline; None when the data has none.
    """

    def __init__(
        self, img_size: int, sweep_half_width: Optional[float] = None, hairline_half_width: Optional[float] = None
    ) -> None:
        self.img_size = int(img_size)
        self.sweeps = [2**k for k in reversed(range(math.ceil(math.log2(self.img_size))))] + [1]
        self.pen_window = None if sweep_half_width is None else window(sweep_half_width)
        self.hairline_window = None if hairline_half_width is None else window(hairline_half_width)

    def __call__(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Args: a batch on the training device (keys as :class:`~.device_batch.Centerlines` plus ``visible``
        (B, 1, H, W) and any ``degrade_*`` fields). Returns: ``image`` (the ink, degraded when the
        batch carries degradation fields, times visible; visible), ``visible`` and the
        TARGET_CHANNELS targets, float32 (B, C, H, W)."""
        g = _Glyphs(batch, self.img_size)
        skeleton, rep = self._skeleton(g)
        tangent = self._tangent(g, skeleton, rep)
        keypoints = torch.stack([self._spots(self._endpoints(g)), self._spots(self._junctions(g, skeleton))], 1)
        ink, width, offset = self._dense(g, rep, batch)
        if self.hairline_window is not None:  # after width and offset: ink only
            ink = torch.maximum(ink, device_sweep.sweep(hairline_capsules(batch), self.img_size, self.hairline_window))
        visible = batch["visible"].float()
        seen = degrade.apply(ink, batch) if "degrade_gain" in batch else ink
        out = {
            "image": torch.cat([seen * visible, visible], 1),
            "visible": visible,
            "ink": ink,
            "skeleton": skeleton.float().view(g.b, 1, g.size, g.size),
            "keypoints": keypoints,
            "tangent": tangent,
            "width": width,
            "offset": offset,
        }
        assert all(out[k].shape[1] == c for k, c in TARGET_CHANNELS.items())
        return out

    def _skeleton(self, g: _Glyphs):
        """Skeleton pixels and, per pixel, the sample nearest its centre (the lowest index on a
        tie, as the CPU renderer's stable sort): (B*HW,) bool and (B*HW,) sample index (or -1)."""
        frac = g.points - g.cells.float() - 0.5
        d2 = (frac * frac).sum(-1).flatten()
        n = g.b * g.hw
        nearest = torch.full((n + 1,), math.inf, device=g.device).scatter_reduce(0, g.pixel, d2, "amin")
        big = g.b * g.m
        index = torch.arange(big, device=g.device)
        candidate = torch.where(d2 == nearest[g.pixel], index, big)
        rep = torch.full((n + 1,), big, device=g.device).scatter_reduce(0, g.pixel, candidate, "amin")[:n]
        skeleton = rep < big
        return skeleton, torch.where(skeleton, rep, -1)

    @staticmethod
    def _tangent(g: _Glyphs, skeleton: torch.Tensor, rep: torch.Tensor) -> torch.Tensor:
        t = g.tangents.view(-1, 2)[rep.clamp(min=0)]
        tx, ty = t[:, 0], t[:, 1]
        double = torch.stack([tx * tx - ty * ty, 2 * tx * ty], 0) * skeleton  # cos 2θ, sin 2θ
        return double.view(2, g.b, g.size, g.size).transpose(0, 1)

    @staticmethod
    def _endpoints(g: _Glyphs) -> torch.Tensor:
        """(B*HW,) bool: pixels holding the start or end of an open stroke (closed loops have none)."""
        start, end = g.stroke_point(g.first), g.stroke_point(g.last)
        keep = (g.count > 0) & ~g.closed()
        pixels = torch.cat([g.pixel_of(start, keep), g.pixel_of(end, keep)], 1).flatten()
        return g.mark(pixels)

    def _junctions(self, g: _Glyphs, skeleton: torch.Tensor) -> torch.Tensor:
        """(B*HW,) bool: one pixel per region where centerlines of different strokes come within
        JUNCTION_RADIUS px -- the candidate pixel nearest the region's centroid (lowest raster
        index on a tie), as the CPU renderer."""
        b, s, size, hw = g.b, g.s, g.size, g.hw
        # Each stroke's own skeleton, dilated by the disk: (B*S, 1, H, W).
        layer = torch.where(g.inside, (g.batch_index * s + g.stroke.clamp(min=0)) * hw + g.in_image, b * s * hw)
        own = torch.zeros(b * s * hw + 1, device=g.device).index_fill_(0, layer.flatten(), 1.0)[:-1]
        disk = _disk(g.device)[None, None]
        near = F.conv2d(own.view(b * s, 1, size, size), disk, padding=JUNCTION_RADIUS) > 0.5
        count = near.view(b, s, hw).sum(1).flatten()
        candidate = (count >= 2) & skeleton
        label = self._components(candidate.view(b, size, size)).flatten()  # pixel index in its image, or hw
        # Centroid test in integers: n * (x, y) - (sum x, sum y) is n times the offset from it.
        pixel = torch.arange(hw, device=g.device).repeat(b)
        x, y = pixel % size, pixel // size
        region = torch.where(candidate, torch.arange(b, device=g.device).repeat_interleave(hw) * hw + label, b * hw)
        sums = torch.zeros(3, b * hw + 1, dtype=torch.long, device=g.device)
        sums.scatter_add_(1, region.expand(3, -1), torch.stack([torch.ones_like(x), x, y]))
        n, sx, sy = sums[:, region]
        d2 = (n * x - sx) ** 2 + (n * y - sy) ** 2
        big = torch.iinfo(torch.long).max
        least = torch.full((b * hw + 1,), big, device=g.device).scatter_reduce(0, region, d2, "amin")
        flat = torch.arange(b * hw, device=g.device)
        pick = torch.where(candidate & (d2 == least[region]), flat, b * hw)
        chosen = torch.full((b * hw + 1,), b * hw, device=g.device).scatter_reduce(0, region, pick, "amin")
        return g.mark(chosen)

    @staticmethod
    def _components(candidate: torch.Tensor) -> torch.Tensor:
        """8-connected components of (B, H, W) bool: each pixel's label is the lowest raster index
        in its component (H*W off it). Min-label propagation with pointer jumping: a fixed number
        of sweeps (no sync), enough for any region junctions make (they are a few pixels wide)."""
        b, h, w = candidate.shape
        off = h * w
        label = torch.where(candidate, torch.arange(off, device=candidate.device).view(1, h, w), off)
        for _ in range(LABEL_SWEEPS):
            pooled = -F.max_pool2d(-label[:, None].float(), 3, stride=1, padding=1)[:, 0].long()
            label = torch.where(candidate, torch.minimum(label, pooled), off)
            jumped = torch.cat([label.view(b, off), torch.full((b, 1), off, device=label.device)], 1)
            label = torch.where(candidate, jumped.gather(1, label.view(b, off)).view(b, h, w), off)
        return label

    def _spots(self, points: torch.Tensor) -> torch.Tensor:
        """Max over sigma-1 Gaussian spots on marked pixels, as the CPU renderer's kernel (the
        kernel is separable and non-negative, so the max over the 7x7 window is a max along rows
        then along columns; values under SPOT_FLOOR are zero there too): (B, H, W)."""
        size, r = self.img_size, SPOT_RADIUS
        profile = _spot_profile(points.device)
        grid = points.float().view(-1, size, size)
        rows = F.pad(grid, (r, r)).unfold(2, 2 * r + 1, 1)  # (B, H, W, 7) along x
        grid = (rows * profile).amax(-1)
        cols = F.pad(grid, (0, 0, r, r)).unfold(1, 2 * r + 1, 1)  # (B, H, W, 7) along y
        grid = (cols * profile).amax(-1)
        return torch.where(grid < SPOT_FLOOR, 0.0, grid)

    def _dense(self, g: _Glyphs, rep: torch.Tensor, batch: Dict[str, torch.Tensor]):
        """Ink coverage, width and offset from each pixel's nearest centerline point (the CPU
        renderer's formulas); the ink of a glyph whose pen is swept comes from :mod:`.device_sweep`.
        Returns (B, 1, H, W), (B, 1, H, W), (B, 2, H, W)."""
        size, b = self.img_size, g.b
        centre = g.pixel_centres()  # (B*HW, 2)
        nearest = self._jump_flood(g, rep.view(b, size, size), centre).flatten()
        has = nearest >= 0
        j = nearest.clamp(min=0)
        s = g.stroke_of(j)
        j, delta = _foot(g, j, s, centre)
        hw = g.half_width.flatten()[j]  # the pen's width where the foot is, as the CPU renderer
        cover = torch.clamp(hw + 0.5 - delta.norm(dim=-1), 0.0, 1.0) * has
        if self.pen_window is not None:
            swept = device_sweep.sweep(pen_capsules(g, batch), size, self.pen_window).flatten()
            cover = torch.where(batch["sweep"].view(b, 1).expand(b, g.hw).flatten() > 0.5, swept, cover)
        on = cover >= INK_THRESHOLD
        shape = (b, size, size)
        ink = cover.view(shape)[:, None]
        width = (hw * on).view(shape)[:, None]
        offset = (delta * on[:, None]).view(b, size, size, 2).permute(0, 3, 1, 2)
        return ink, width, offset

    def _jump_flood(self, g: _Glyphs, seed: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """(B, H, W) sample index of each pixel's nearest seed (skeleton representatives), by
        distance from the pixel centre to the sample; -1 where a glyph has no seed."""
        b, size = g.b, self.img_size
        points = torch.cat([g.points.view(-1, 2), torch.full((1, 2), math.inf, device=g.device)])
        centre = centre.view(b, 1, size, size, 2)
        trash = len(points) - 1
        seed = torch.where(seed >= 0, seed, trash)
        for k in self.sweeps:
            padded = F.pad(seed, (k, k, k, k), value=trash)
            shifts = [padded[:, dy : dy + size, dx : dx + size] for dy in (0, k, 2 * k) for dx in (0, k, 2 * k)]
            candidates = torch.stack(shifts, 1)  # (B, 9, H, W)
            d2 = ((points[candidates] - centre) ** 2).sum(-1).nan_to_num(math.inf)
            seed = candidates.gather(1, d2.argmin(1, keepdim=True))[:, 0]
        return torch.where(seed == trash, -1, seed)


class _Glyphs:
    """A padded batch of centerlines, flattened for scatter/gather (B glyphs, M samples, S strokes)."""

    def __init__(self, batch: Dict[str, torch.Tensor], size: int) -> None:
        self.points, self.stroke, self.arc = batch["points"].float(), batch["stroke"], batch["arc"].float()
        self.half_width, self.stroke_len = batch["half_width"].float(), batch["stroke_len"].float()
        self.first, self.count = batch["stroke_first"], batch["stroke_count"]
        self.b, self.m, _ = self.points.shape
        self.s = self.stroke_len.shape[1]
        self.size, self.hw, self.device = size, size * size, self.points.device
        self.batch_index = torch.arange(self.b, device=self.device)[:, None]  # (B, 1)
        self.last = (self.first + self.count - 1).clamp(min=0)
        self.first_flat = (self.batch_index * self.m + self.first).flatten()
        self.last_flat = (self.batch_index * self.m + self.last).flatten()
        self.spacing = (self.stroke_len / (self.count - 1).clamp(min=1)).flatten()
        self.cells = torch.floor(self.points).long()
        self.inside = (self.stroke >= 0) & ((self.cells >= 0) & (self.cells < size)).all(-1)
        self.in_image = self.cells[..., 1].clamp(0, size - 1) * size + self.cells[..., 0].clamp(0, size - 1)
        # Flat pixel over the batch; samples off the canvas (or padding) go to the trash element.
        self.pixel = torch.where(self.inside, self.batch_index * self.hw + self.in_image, self.b * self.hw).flatten()
        self.tangents = self._tangents()

    def _tangents(self) -> torch.Tensor:
        """Unit direction at each sample, central difference within its stroke ((1, 0) if none)."""
        idx = torch.arange(self.m, device=self.device).expand(self.b, -1)
        nxt, prv = (idx + 1).clamp(max=self.m - 1), (idx - 1).clamp(min=0)
        nxt = torch.where(self.stroke.gather(1, nxt) == self.stroke, nxt, idx)
        prv = torch.where(self.stroke.gather(1, prv) == self.stroke, prv, idx)
        d = self.points.gather(1, nxt[..., None].expand(-1, -1, 2)) - self.points.gather(
            1, prv[..., None].expand(-1, -1, 2)
        )
        n = d.norm(dim=-1, keepdim=True)
        unit = torch.tensor([1.0, 0.0], device=self.device)
        return torch.where(n > 1e-9, d / n.clamp(min=1e-9), unit)

    def closed(self) -> torch.Tensor:
        """(B, S) bool: strokes whose ends meet and that are long (loops: no ends), as the CPU renderer."""
        start, end = self.stroke_point(self.first), self.stroke_point(self.last)
        return ((end - start).norm(dim=-1) < CLOSED_GAP) & (self.stroke_len > 4 * CLOSED_GAP)

    def per_sample(self, per_stroke: torch.Tensor) -> torch.Tensor:
        """(B, S, ...) values of each sample's stroke -> (B, M, ...)."""
        index = self.stroke.clamp(min=0)
        index = index.view(*index.shape, *([1] * (per_stroke.dim() - 2))).expand(-1, -1, *per_stroke.shape[2:])
        return per_stroke.gather(1, index)

    def stroke_of(self, sample: torch.Tensor) -> torch.Tensor:
        """Flat stroke index (b * S + stroke) of flat sample indices."""
        return torch.div(sample, self.m, rounding_mode="floor") * self.s + self.stroke.flatten()[sample].clamp(min=0)

    def stroke_point(self, index: torch.Tensor) -> torch.Tensor:
        """(B, S, 2) points at per-stroke sample indices."""
        return self.points.gather(1, index.clamp(0, max(self.m - 1, 0))[..., None].expand(-1, -1, 2))

    def pixel_of(self, point: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, S) flat pixels of per-stroke points; the trash element where not kept or off the canvas."""
        cell = torch.floor(point).long()
        keep = keep & ((cell >= 0) & (cell < self.size)).all(-1)
        flat = (
            self.batch_index * self.hw
            + cell[..., 1].clamp(0, self.size - 1) * self.size
            + cell[..., 0].clamp(0, self.size - 1)
        )
        return torch.where(keep, flat, self.b * self.hw)

    def mark(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B*HW,) bool map of flat pixels (the trash element dropped)."""
        n = self.b * self.hw
        return torch.zeros(n + 1, dtype=torch.bool, device=self.device).index_fill_(0, pixels, True)[:n]

    def pixel_centres(self) -> torch.Tensor:
        c = torch.arange(self.size, device=self.device, dtype=torch.float32) + 0.5
        y, x = torch.meshgrid(c, c, indexing="ij")
        return torch.stack([x, y], -1).view(1, self.hw, 2).expand(self.b, -1, -1).reshape(-1, 2)


def _foot(g: _Glyphs, j: torch.Tensor, s: torch.Tensor, centre: torch.Tensor):
    """The nearest centerline point to each pixel centre, from sample ``j`` of stroke ``s`` (flat
    indices): the CPU renderer's _foot_of_perpendicular (the walk along the stroke by the
    tangential distance; where it did not settle, the nearest foot of the REFINE samples either
    side, computed everywhere and kept only there: a mask, not a sync).

    Returns:
        (sample beside the foot, offset from the pixel centre to the foot (K, 2)).
    """
    first, last = g.first_flat[s], g.last_flat[s]
    step = g.spacing[s].clamp(min=1e-9)
    p, t = g.points.view(-1, 2), g.tangents.view(-1, 2)
    half = g.spacing.view(g.b, -1).gather(1, g.stroke.clamp(min=0)).flatten() / 2  # per sample
    arcs = g.arc.flatten()
    lo, hi = -torch.minimum(half, arcs), torch.minimum(half, g.per_sample(g.stroke_len).flatten() - arcs)
    x, y = centre[:, 0], centre[:, 1]

    def along(j, x, y):
        return (x - p[j, 0]) * t[j, 0] + (y - p[j, 1]) * t[j, 1]

    def offset(j, a, x, y):  # from the query to sample j's foot
        a = torch.minimum(torch.maximum(a, lo[j]), hi[j])
        return p[j, 0] + a * t[j, 0] - x, p[j, 1] + a * t[j, 1] - y

    for _ in range(2):
        j = torch.minimum(torch.maximum(j + torch.round(along(j, x, y) / step).long(), first), last)
    a = along(j, x, y)
    dx, dy = offset(j, a, x, y)
    unsettled = torch.minimum(torch.maximum(j + torch.round(a / step).long(), first), last) != j  # still moving
    window = j[:, None] + torch.arange(-REFINE, REFINE + 1, device=j.device)
    window = torch.minimum(torch.maximum(window, first[:, None]), last[:, None])
    wx, wy = offset(window, along(window, x[:, None], y[:, None]), x[:, None], y[:, None])
    pick = (wx * wx + wy * wy).argmin(1, keepdim=True)
    j = torch.where(unsettled, window.gather(1, pick)[:, 0], j)
    dx = torch.where(unsettled, wx.gather(1, pick)[:, 0], dx)
    dy = torch.where(unsettled, wy.gather(1, pick)[:, 0], dy)
    return j, torch.stack([dx, dy], -1)

"""Scan-like degradation of the model's input (``data.degrade``): faint and broken ink, ink
specks, blur, an uneven paper tone and sensor noise. Only the input changes; every target
(the ink reconstruction included) stays that of the clean glyph, so a model trained with it
learns to see through the damage.

Two halves, so that either renderer can use it: :func:`draw` makes every random choice in the
data-loader worker from the sample's generator (per-pixel fields and a blur width), and
:func:`apply` combines them with the ink in torch, on one sample in the worker (``cpu``
renderer) or on the whole batch on the training device (``device`` renderer, which draws the
ink there). Same fields, same function: the two paths agree.

Per pixel, with ``c`` the clean ink coverage (1 ink, 0 paper)::

    c = max(c * (1 - gap) * gain, speck)          faint, uneven and broken ink; specks
    c = gaussian_blur(c, blur)                     focus / scan resolution
    x = clip(paper + (1 - paper) * c + noise, 0, 1)
"""

from __future__ import annotations

from typing import Dict

import cv2
import numpy as np
import torch
import torch.nn.functional as F

FIELDS = ("gain", "gap", "speck", "paper", "noise")  # (1, H, W) maps; plus "blur" (1,)
INK_DARKNESS = (0.45, 1.0)  # the darkest ink a sample reaches (faint ink below 1)
UNEVEN = 0.35  # ink darkness falls by up to this fraction across the page (uneven pressure / light)
PAPER_TONE = (0.0, 0.25)  # the paper's darkest tone, varying smoothly across the image
BREAK_PROB = 0.5  # share of degraded samples whose strokes have gaps
BREAK_AREA = (0.02, 0.07)  # share of the image under gaps, where there are gaps
SPECKS = 6  # up to this many dust specks
SPECK_RADIUS = (0.3, 1.2)  # px
SPECK_DARKNESS = (0.3, 1.0)
BLUR_SIGMA = (0.0, 1.0)  # px, Gaussian
NOISE_SIGMA = (0.01, 0.08)
BLUR_RADIUS = 3  # px, the blur kernel's half-size (3 sigma at the widest blur)


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: uniform values on a coarse grid, bicubically enlarged."""
    coarse = rng.uniform(0.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def identity(size: int) -> Dict[str, np.ndarray]:
    """Fields that leave the ink as it is (an undegraded sample in a degraded run)."""
    zeros = np.zeros((1, size, size), np.float32)
    fields = {k: zeros for k in FIELDS}
    fields["gain"] = np.ones((1, size, size), np.float32)
    fields["blur"] = np.zeros(1, np.float32)
    return {f"degrade_{k}": v for k, v in fields.items()}


def draw(rng: np.random.Generator, size: int) -> Dict[str, np.ndarray]:
    """Every random choice of one degraded sample, keyed ``degrade_<field>``.

    Args:
        rng: the sample's generator (so the degradation is fixed by seed, epoch and index).
        size: image side, pixels.
    """
    gain = rng.uniform(*INK_DARKNESS) * (1.0 - UNEVEN * _smooth_field(rng, size, 3))
    gap = np.zeros((size, size), np.float32)
    if rng.uniform() < BREAK_PROB:
        field = _smooth_field(rng, size, 12)
        cut = np.quantile(field, 1.0 - rng.uniform(*BREAK_AREA))
        gap = np.clip((field - cut) / 0.05, 0.0, 1.0)
    n = int(rng.integers(0, SPECKS + 1))
    centre = rng.uniform(0, size, size=(n, 2))
    radius = rng.uniform(*SPECK_RADIUS, size=n)
    darkness = rng.uniform(*SPECK_DARKNESS, size=n)
    speck = np.zeros((size, size))
    for (cx, cy), r, dark in zip(centre, radius, darkness, strict=True):  # each in its own small window
        x0, y0 = max(int(cx - r - 1), 0), max(int(cy - r - 1), 0)
        x1, y1 = min(int(cx + r + 2), size), min(int(cy + r + 2), size)
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        disk = np.clip(r + 0.5 - np.hypot(xs - cx, ys - cy), 0.0, 1.0) * dark  # a disk with a 1-px ramp
        np.maximum(speck[y0:y1, x0:x1], disk, out=speck[y0:y1, x0:x1])
    paper = rng.uniform(*PAPER_TONE) * _smooth_field(rng, size, 2)
    noise = rng.normal(0.0, rng.uniform(*NOISE_SIGMA), size=(size, size))
    fields = {"gain": gain, "gap": gap, "speck": speck, "paper": paper, "noise": noise}
    out = {f"degrade_{k}": np.asarray(v, np.float32)[None] for k, v in fields.items()}
    out["degrade_blur"] = np.array([rng.uniform(*BLUR_SIGMA)], np.float32)
    return out


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of each (1, H, W) image of ``x`` with its own sigma (0: none)."""
    b = x.shape[0]
    d = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (d / sigma.to(x.dtype).view(b, 1).clamp(min=1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)
    x = x.view(1, b, *x.shape[2:])
    x = F.conv2d(x, k.view(b, 1, 1, -1), padding=(0, BLUR_RADIUS), groups=b)
    x = F.conv2d(x, k.view(b, 1, -1, 1), padding=(BLUR_RADIUS, 0), groups=b)
    return x.view(b, 1, *x.shape[2:])


def apply(ink: torch.Tensor, fields: Dict[str, torch.Tensor]) -> torch.Tensor:
    """The degraded input of a batch.

    Args:
        ink: (B, 1, H, W) clean ink coverage.
        fields: ``degrade_<field>`` tensors as :func:`draw` makes them, stacked: (B, 1, H, W)
            maps and a (B, 1) blur.

    Returns:
        (B, 1, H, W) the degraded image, in [0, 1].
    """
    f = {k: fields[f"degrade_{k}"].to(ink.dtype) for k in FIELDS}
    c = torch.maximum(ink * (1.0 - f["gap"]) * f["gain"], f["speck"])
    c = _blur(c, fields["degrade_blur"])
    return (f["paper"] + (1.0 - f["paper"]) * c + f["noise"]).clamp(0.0, 1.0)


def keys() -> tuple:
    """The batch keys the fields travel under."""
    return tuple(f"degrade_{k}" for k in (*FIELDS, "blur"))

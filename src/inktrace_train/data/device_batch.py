"""The worker's half of the device renderer (``data.renderer=device``): a glyph's strokes and pen
become centerline samples (numpy), and :func:`collate_centerlines` pads them into a batch that
:class:`~.device_render.DeviceRenderer` draws on the training device.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch

from inktrace_train.data.brush import Outlines
from inktrace_train.data.centerline import resample, sample_tangents
from inktrace_train.data.device_sweep import HAIRLINE
from inktrace_train.data.pen import Hairlines, Pen
from inktrace_train.data.sweep import hairline_samples, segments

PER_SAMPLE = ("points", "stroke", "arc", "half_width")  # padded along the samples of a glyph
PER_STROKE = ("stroke_first", "stroke_count", "stroke_len")  # padded along its strokes


class Centerlines:
    """The worker's half of the device renderer: strokes and pen -> centerline samples (numpy).

    Args:
        img_size: side of the square output, pixels.
    """

    on_device = True  # the targets are drawn on the training device, batch by batch

    def __init__(self, img_size: int) -> None:
        self.img_size = int(img_size)

    def __call__(self, strokes: List[np.ndarray], pen: np.ndarray | Pen) -> Dict[str, np.ndarray]:
        """Centerline samples of one glyph (what :class:`DeviceRenderer` renders from).

        Args:
            strokes: S float (N, 2) polylines in pixel coordinates.
            pen: the glyph's :class:`~.pen.Pen`, or its (S,) half width per stroke (a constant round pen).

        Returns:
            points float32 (M, 2); stroke int64 (M,); arc float32 (M,) from the stroke's start;
            half_width float32 (M,) the pen's there; per stroke: stroke_first / stroke_count int64
            (S,) (its samples), stroke_len float32 (S,); per glyph: sweep (1,) (1: the ink is swept
            sample by sample, :mod:`.device_sweep`), flat_caps (1,); the hairline samples (HAIRLINE).
        """
        if isinstance(pen, Outlines):
            raise ValueError("the device renderer draws pen ink only: brush glyphs need data.renderer=cpu")
        pen = pen if isinstance(pen, Pen) else Pen(np.asarray(pen, np.float32))
        if pen.outline:
            raise ValueError(
                "the device renderer sweeps pen ink: outline ink (data.outline_ink) needs data.renderer=cpu"
            )
        strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
        keep = [i for i, s in enumerate(strokes) if len(s) > 0]
        glyph = dict(
            sweep=np.array([pen.varies], np.float32),
            flat_caps=np.array([pen.flat_caps], np.float32),
            **_hairline_samples(pen.hairlines),
        )
        if not keep:
            empty_f, empty_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
            return dict(
                points=np.zeros((0, 2), np.float32),
                stroke=empty_i,
                arc=empty_f,
                half_width=empty_f,
                stroke_first=empty_i,
                stroke_count=empty_i,
                stroke_len=empty_f,
                **glyph,
            )
        samples, sid, arc = resample([strokes[i] for i in keep])
        count = np.bincount(sid, minlength=len(keep))
        first = np.cumsum(count) - count
        stroke_len = arc[first + count - 1]
        half_width = pen.select(keep).sample_half_widths(sid, arc, stroke_len, sample_tangents(samples, sid))
        return dict(
            points=samples.astype(np.float32),
            stroke=sid,
            arc=arc.astype(np.float32),
            half_width=half_width.astype(np.float32),
            stroke_first=first,
            stroke_count=count,
            stroke_len=stroke_len.astype(np.float32),
            **glyph,
        )


def _hairline_samples(hairlines: Hairlines) -> Dict[str, np.ndarray]:
    """The HAIRLINE arrays of a glyph's hairlines (empty when it has none)."""
    if not hairlines.lines:
        empty = np.zeros(0, np.float32)
        return dict(zip(HAIRLINE, (np.zeros((0, 2), np.float32),) * 2 + (empty,) * 4, strict=True))
    samples, tangents, hid, arc, length = hairline_samples(hairlines)
    lo, hi = segments(hid, arc, length)
    values = (samples, tangents, lo, hi, hairlines.half_width[hid], hairlines.intensity[hid])
    return {k: np.asarray(v, np.float32) for k, v in zip(HAIRLINE, values, strict=True)}


def collate_centerlines(items: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Stack samples of different sizes: per-sample arrays padded to the longest glyph (stroke
    -1), per-stroke arrays to the most strokes (count 0), hairline samples to the most (intensity
    0); anything else is stacked."""
    out: Dict[str, torch.Tensor] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in PER_SAMPLE or key in PER_STROKE or key in HAIRLINE:
            fill = -1 if key == "stroke" else 0
            out[key] = torch.nn.utils.rnn.pad_sequence(values, batch_first=True, padding_value=fill)
        else:
            out[key] = torch.stack(values)
    return out


__all__ = ["PER_SAMPLE", "PER_STROKE", "Centerlines", "collate_centerlines"]

"""The Python API: ``Tracer.from_checkpoint(path).trace(image)`` -> strokes in the image's pixels.

A Tracer holds a map function (a checkpoint's PyTorch model, or an exported ONNX file run by
onnxruntime) and does the rest in numpy: reading the image, finding its glyphs
(:mod:`~inktrace_train.evaluation.pages`), putting each on the model's canvas
(:mod:`~inktrace_train.evaluation.imaging`), running the model on batches of glyphs, tracing
each glyph's maps (:mod:`~inktrace_train.evaluation.tracing`) and mapping the strokes back.

This module imports no torch, so ``Tracer.from_onnx`` runs without it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from inktrace_train.evaluation.imaging import MAX_PIXELS, ImageSource, Placement, place, read_ink
from inktrace_train.evaluation.pages import find_glyphs, glyph_ink
from inktrace_train.evaluation.tracing import JUNCTION_PEAK, KEYPOINT_PEAK, SKELETON_THRESHOLD, Stroke, trace
from inktrace_train.evaluation.views import DEFAULT_VIEWS, ShiftViews, check_views

BATCH_SIZE = 64  # glyphs per model call: bounds memory on a page of thousands of glyphs
Maps = Dict[str, np.ndarray]
Box = Tuple[int, int, int, int]
Job = Tuple[Box, np.ndarray, Placement]  # a glyph's box, its canvas, where the canvas came from


@dataclass
class Glyph:
    """One traced glyph: ``box`` (x0, y0, x1, y1) of its ink in image pixel edges, ``strokes``
    in image pixel coordinates."""

    box: Box
    strokes: List[Stroke]


@dataclass
class Page:
    """A traced image: its size and its glyphs in reading order."""

    width: int
    height: int
    glyphs: List[Glyph] = field(default_factory=list)

    @property
    def strokes(self) -> List[Stroke]:
        return [s for g in self.glyphs for s in g.strokes]

    def to_json(self) -> dict:
        """``{"image": {"width", "height"}, "glyphs": [{"box", "strokes": [{"points", "width"}]}]}``."""
        return {
            "image": {"width": self.width, "height": self.height},
            "glyphs": [
                {
                    "box": list(g.box),
                    "strokes": [
                        {"points": np.round(s.points, 2).tolist(), "width": _width(s.width)} for s in g.strokes
                    ],
                }
                for g in self.glyphs
            ],
        }


def _width(width: float) -> Optional[float]:
    """A pen width for JSON: null where the model has no width head (NaN is not JSON)."""
    return round(float(width), 2) if math.isfinite(width) else None


def keypoint_peaks(heat: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) local maxima (3x3) above ``threshold``: metrics.peaks in numpy, for the torch-free path."""
    return (heat == cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat > threshold)


def glyph_maps(batch: Maps) -> Iterator[Maps]:
    """A batch's maps, each (B, C, S, S), as each glyph's: one-channel maps (S, S), the others (C, S, S)."""
    for i in range(len(next(iter(batch.values())))):
        yield {k: v[i, 0] if v.shape[1] == 1 else v[i] for k, v in batch.items()}


def trace_maps(maps: Maps) -> List[Stroke]:
    """One glyph's maps -> its strokes in canvas pixels: the skeleton map thresholded, the
    keypoint maps' peaks as junctions and stroke ends, with the tangent, width and ink maps
    (predict, evaluate and the TensorBoard grid all trace this way)."""
    junctions = endpoints = None
    if "keypoints" in maps:
        junctions = _points(keypoint_peaks(maps["keypoints"][1], JUNCTION_PEAK))
        endpoints = _points(keypoint_peaks(maps["keypoints"][0], KEYPOINT_PEAK))
    skeleton = maps["skeleton"] >= SKELETON_THRESHOLD
    return trace(skeleton, junctions, maps["tangent"], maps.get("half_width"), endpoints, maps.get("ink"))


def _points(mask: np.ndarray) -> np.ndarray:
    """(K, 2) x, y pixel centres of a bool mask's pixels."""
    ys, xs = np.nonzero(mask)
    return np.stack([xs + 0.5, ys + 0.5], 1)


class Tracer:
    """Raster ink in, strokes out.

    Args:
        maps: ``(B, 1, S, S)`` float32 ink -> maps by name, each ``(B, C, S, S)``: ``skeleton``,
            ``ink``, ``tangent`` and, with the dense heads, ``keypoints`` and ``half_width``.
        size: the model's canvas side S.
        config: the checkpoint's config (empty for an exported model).
        batch_size: glyphs per call of ``maps``.
        max_pixels: larger images are refused from their header, before decoding.
        views: each glyph read as it is (1) or in 4 views, the mean of its 1-px shifts' maps
            (:mod:`~inktrace_train.evaluation.views`; the default: more accurate, the model's
            share of the time four times).
    """

    def __init__(
        self,
        maps: Callable[[np.ndarray], Maps],
        size: int,
        config: Optional[dict] = None,
        batch_size: int = BATCH_SIZE,
        max_pixels: int = MAX_PIXELS,
        views: int = DEFAULT_VIEWS,
    ) -> None:
        self._maps, self.size, self.config = ShiftViews(maps, views), size, config or {}
        self.batch_size, self.max_pixels = batch_size, max_pixels

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", **kwargs) -> Tracer:
        """A checkpoint file, or a run directory (its last stage's best checkpoint)."""
        from inktrace_train.evaluation.predictor import TorchMaps  # torch loads here, not at import

        check_views(kwargs.get("views", DEFAULT_VIEWS))  # before the checkpoint is read
        model = TorchMaps(path, device)
        return cls(model, model.size, model.config, **kwargs)

    @classmethod
    def from_onnx(cls, path: str, **kwargs) -> Tracer:
        """A file written by ``python -m inktrace_train.ckpt export CKPT --format onnx``."""
        from inktrace_train.evaluation.onnxmaps import OnnxMaps

        check_views(kwargs.get("views", DEFAULT_VIEWS))
        model = OnnxMaps(path)
        return cls(model, model.size, **kwargs)

    def maps(self, canvas: np.ndarray) -> Maps:
        """One (S, S) canvas -> its maps: ``skeleton``, ``ink``, ``half_width`` (S, S),
        ``tangent``, ``keypoints`` (2, S, S)."""
        return next(self._batched_maps(canvas[None]))

    def _batched_maps(self, canvases: np.ndarray) -> Iterator[Maps]:
        return glyph_maps(self._maps(canvases[:, None].astype(np.float32)))

    def strokes(self, maps: Maps) -> List[Stroke]:
        """The strokes of one glyph's maps, in canvas pixels (:func:`trace_maps`)."""
        return trace_maps(maps)

    def trace(self, image: ImageSource, single: bool = False) -> List[Stroke]:
        """Every stroke of an image (a path, or a grey/colour array), in its pixel coordinates;
        ``single`` traces the whole image as one glyph instead of finding its glyphs."""
        return self.trace_page(image, single).strokes

    def trace_page(self, image: ImageSource, single: bool = False) -> Page:
        """The image's glyphs (or, with ``single``, the whole image as one) and their strokes."""
        ink = read_ink(image, self.max_pixels)
        page = Page(width=ink.shape[1], height=ink.shape[0])
        jobs = self.glyphs(ink, single)
        while batch := list(itertools.islice(jobs, self.batch_size)):
            self._trace_batch(batch, page)
        return page

    def glyphs(self, ink: np.ndarray, single: bool = False) -> Iterator[Job]:
        """Each glyph of uint8 ink (:func:`~inktrace_train.evaluation.imaging.read_ink`) as (its
        box, its canvas, its placement), in reading order; one at a time, so a page of thousands
        holds only a batch of canvases."""
        if single:
            canvas, placement = place(ink, self.size)
            if placement is not None:
                yield placement.box, canvas, placement
            return
        labels, regions = find_glyphs(ink)
        for region in regions:
            crop, x0, y0 = glyph_ink(ink, labels, region)
            canvas, placement = place(crop, self.size, x0, y0)
            yield region.box, canvas, placement

    def _trace_batch(self, jobs: List[Job], page: Page) -> None:
        """The model's calls for the batch (one a view); each glyph traced and mapped back to the image."""
        for (box, _, placement), maps in zip(jobs, self._batched_maps(np.stack([j[1] for j in jobs])), strict=True):
            page.glyphs.append(Glyph(box=box, strokes=[placement.to_image(s) for s in self.strokes(maps)]))

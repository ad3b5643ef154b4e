"""Images in: any file or array read as ink, huge ones refused before they are decoded, and the
glyph rule that puts ink on the model's canvas and maps traced strokes back to the image.

The rule (``predict``, ``evaluate``, the Tracer API): the image is read as grey; if its border is
light it is dark ink on light paper and is inverted (ink = 1 - grey); a glyph's ink is cropped to
its bounding box (coverage above INK_LEVEL), scaled with its aspect kept (area interpolation when
shrinking) so that the longer side is GLYPH_SCALE of the canvas (the middle of the training scale
range), and centred. :class:`Placement` records that crop and scale, so a point traced on the
canvas maps back to the image exactly (pixel centres at i + 0.5 on both sides).

No torch here: ``predict --onnx`` runs without it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from inktrace_train.errors import ToolError
from inktrace_train.evaluation.tracing import Stroke

GLYPH_SCALE = 0.85  # the longer side of the ink, as a fraction of the canvas
INK_LEVEL = 0.1  # coverage above this counts as ink when cropping
# 8000 x 8000: the page as uint8 plus the int32 component labels stay under ~330 MB. A larger
# image is refused from its header alone, before a byte of it is decoded.
MAX_PIXELS = 64_000_000

ImageSource = str | Path | np.ndarray  # a file, or a grey or colour array


def _header(path: Path) -> Tuple[int, int, bool]:
    """(width, height, has alpha) from the file's header, nothing decoded; (0, 0, False) when
    Pillow cannot parse it (OpenCV may still read it); a size over every limit when Pillow calls
    it a bomb."""
    from PIL import Image as PILImage  # Pillow reads headers lazily; OpenCV has no header-only call

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as im:
                alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
                return (*im.size, alpha)
    except PILImage.DecompressionBombError:  # over twice Pillow's MAX_IMAGE_PIXELS: it gives no size
        return (2 * PILImage.MAX_IMAGE_PIXELS + 1, 1, False)
    except (OSError, ValueError, SyntaxError):  # Pillow's errors for files it cannot parse
        return (0, 0, False)


def _as_unit(img: np.ndarray, what: str) -> np.ndarray:
    """An image array's values as float32 in [0, 1]: uint8 and uint16 scaled, floats checked."""
    if img.dtype in (np.uint8, np.uint16):
        return img.astype(np.float32) / np.iinfo(img.dtype).max
    if img.dtype.kind not in "fb":
        raise ToolError(f"{what}: an image must be uint8, uint16 or float in [0, 1], not {img.dtype} (pass uint8)")
    values = img.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        low, high = np.nanmin(values), np.nanmax(values)
        raise ToolError(
            f"{what}: a float image must hold values in [0, 1], this one holds {low:g} to {high:g}"
            + (" and NaN or inf" if not np.isfinite(values).all() else "")
            + " (pass uint8, or divide by 255)"
        )
    return values


def _over_white(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 grey composited over white paper by its alpha in [0, 1]: ink drawn on a transparent
    background (a canvas export) is dark on white, as if printed."""
    return np.round(grey.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def read_grey(source: ImageSource, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image as uint8 grey (H, W), transparent parts as white paper. A path is checked against
    ``max_pixels`` from its header before it is decoded; an array may be grey, colour or colour
    with alpha (RGB order), uint8, uint16 or float in [0, 1]."""
    if isinstance(source, np.ndarray):
        img = source
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))) or img.size == 0:
            raise ToolError(f"an image array must be (H, W) or (H, W, 3|4), got shape {source.shape}")
        if img.shape[0] * img.shape[1] > max_pixels:
            raise ToolError(f"an image of {img.shape[1]}x{img.shape[0]} is over the limit of {max_pixels:,} pixels")
        unit = _as_unit(img, "an image array")
        grey = unit if unit.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(unit[..., :3]), cv2.COLOR_RGB2GRAY)
        grey = np.round(grey * 255).astype(np.uint8)
        return _over_white(grey, unit[..., 3]) if unit.ndim == 3 and unit.shape[2] == 4 else grey
    path = Path(source)
    if not path.is_file():
        raise ToolError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    width, height, alpha = _header(path)
    if width * height > max_pixels:
        size = f"{width}x{height} is" if height > 1 else f"its header claims more than {width - 1:,} pixels,"
        raise ToolError(f"{path}: {size} over the limit of {max_pixels:,} pixels; downscale it first")
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # EXIF orientation applied
    if grey is None:
        raise ToolError(f"{path}: not a readable image")
    if alpha:
        transparency = _alpha(path)
        if transparency is not None and transparency.shape == grey.shape:
            grey = _over_white(grey, transparency)
    return grey


def _alpha(path: Path) -> Optional[np.ndarray]:
    """The file's alpha in [0, 1], turned by its EXIF orientation as OpenCV turns the grey
    (OpenCV's own unchanged read does not turn it); None when Pillow cannot decode it."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    try:
        with PILImage.open(path) as im:
            turned = ImageOps.exif_transpose(im).convert("RGBA")
            return np.asarray(turned.getchannel("A"), np.float32) / 255.0
    except (OSError, ValueError, SyntaxError):
        return None


def read_ink(source: ImageSource, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image as uint8 ink coverage (255 = full ink), light paper inverted (module rule)."""
    grey = read_grey(source, max_pixels)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 255 - grey if border.mean() > 127.5 else grey


@dataclass(frozen=True)
class Placement:
    """Where a canvas came from: canvas x maps to image ``x0 + (x - left) * sx`` (y likewise)."""

    x0: int
    y0: int
    sx: float
    sy: float
    left: int
    top: int
    width: int  # of the ink's crop in the image
    height: int

    @property
    def box(self) -> Tuple[int, int, int, int]:
        """The ink's crop in the image: x0, y0, x1, y1 in pixel edges."""
        return self.x0, self.y0, self.x0 + self.width, self.y0 + self.height

    def to_image(self, stroke: Stroke) -> Stroke:
        """A stroke traced on the canvas, in image pixel coordinates (its width too)."""
        points = (stroke.points - [self.left, self.top]) * [self.sx, self.sy] + [self.x0, self.y0]
        return Stroke(points=points, width=stroke.width * (self.sx + self.sy) / 2)


def place(ink: np.ndarray, size: int, x0: int = 0, y0: int = 0) -> Tuple[np.ndarray, Optional[Placement]]:
    """Ink coverage (H, W) (uint8, or float in [0, 1]) of one glyph whose top-left pixel is
    (x0, y0) in the image -> the float32 (size, size) canvas by the module's rule and its
    Placement (None when there is no ink: the canvas is empty)."""
    ink = ink.astype(np.float32) / 255.0 if ink.dtype == np.uint8 else ink.astype(np.float32)
    canvas = np.zeros((size, size), np.float32)
    rows, cols = np.nonzero((ink > INK_LEVEL).any(1))[0], np.nonzero((ink > INK_LEVEL).any(0))[0]
    if not len(rows):
        return canvas, None
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = GLYPH_SCALE * size / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top : top + h, left : left + w] = np.clip(small, 0, 1)
    # cv2.resize maps pixel centres as x_src = x_dst * (src / dst) in continuous coordinates.
    placement = Placement(
        x0=x0 + int(cols[0]),
        y0=y0 + int(rows[0]),
        sx=crop.shape[1] / w,
        sy=crop.shape[0] / h,
        left=left,
        top=top,
        width=crop.shape[1],
        height=crop.shape[0],
    )
    return canvas, placement

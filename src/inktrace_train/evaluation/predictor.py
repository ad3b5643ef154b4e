"""The Python API of a trained model: an ink image in, its predicted maps and traced strokes out."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import torch

from inktrace_train.checkpoint.store import load_checkpoint
from inktrace_train.errors import ToolError, first_line
from inktrace_train.evaluation.metrics import SKELETON_THRESHOLD, peaks
from inktrace_train.evaluation.tracing import JUNCTION_PEAK, Stroke, trace
from inktrace_train.model.network import InkTraceModel
from inktrace_train.run.rundir import best_checkpoint_of

GLYPH_SCALE = 0.85  # the longer side of the ink, as a fraction of the canvas
INK_LEVEL = 0.1  # coverage above this counts as ink when cropping


def to_canvas(image: Path | np.ndarray, size: int) -> np.ndarray:
    """An image file, or a grey uint8 array (H, W) as a file would read, as float32 (size, size)
    ink coverage in [0, 1], by the module's rule: grey, light paper inverted, cropped to the ink,
    the longer side GLYPH_SCALE of the canvas, centred."""
    if isinstance(image, np.ndarray):
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(f"to_canvas takes a grey uint8 (H, W) array, got {image.dtype} {image.shape}")
        grey = image
    else:
        grey = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise ToolError(f"{image}: not a readable image")
    img = grey.astype(np.float32) / 255.0
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    ink = 1.0 - img if border.mean() > 0.5 else img
    ys, xs = np.nonzero(ink > INK_LEVEL)
    canvas = np.zeros((size, size), np.float32)
    if not len(ys):
        return canvas
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = GLYPH_SCALE * size / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top : top + h, left : left + w] = np.clip(small, 0, 1)
    return canvas


class Predictor:
    """A checkpoint's model, in eval mode, that maps an ink canvas to its maps and strokes."""

    def __init__(self, checkpoint: str, device: str = "cpu") -> None:
        ckpt = load_checkpoint(best_checkpoint_of(checkpoint))
        config = self.config = ckpt.config or {}
        if not config.get("model"):
            raise ToolError(f"{checkpoint}: the checkpoint holds no model config to rebuild the model from")
        self.size = int((config.get("data") or {}).get("img_size", 64))
        try:
            self.model = InkTraceModel(**config["model"])
            self.model.load_state_dict(ckpt.model_state_dict)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ToolError(
                f"{checkpoint}: its weights do not fit the model its config describes: {first_line(e)}"
            ) from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()

    @torch.no_grad()
    def maps(self, canvas: np.ndarray) -> Dict[str, np.ndarray]:
        """skeleton and ink probabilities (H, W), tangent (2, H, W), and with the dense heads
        keypoint probabilities (2, H, W) and half width (H, W)."""
        ink = torch.from_numpy(canvas)[None, None].to(self.device)
        out = self.model(torch.cat([ink, torch.ones_like(ink)], 1))
        result = {
            "skeleton": torch.sigmoid(out["skeleton"][0, 0]),
            "ink": torch.sigmoid(out["ink"][0, 0]),
            "tangent": out["tangent"][0],
        }
        if "keypoints" in out:
            result["keypoints"] = torch.sigmoid(out["keypoints"][0])
            result["half_width"] = out["width"][0, 0]
        return {k: v.float().cpu().numpy() for k, v in result.items()}

    def strokes(self, maps: Dict[str, np.ndarray]) -> List[Stroke]:
        junctions = None
        if "keypoints" in maps:
            found = peaks(torch.from_numpy(maps["keypoints"][1:2]), JUNCTION_PEAK)[0].numpy()
            ys, xs = np.nonzero(found)
            junctions = np.stack([xs + 0.5, ys + 0.5], 1)
        skeleton = maps["skeleton"] >= SKELETON_THRESHOLD
        return trace(skeleton, junctions, maps["tangent"], maps.get("half_width"))

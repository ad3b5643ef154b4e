"""A PNG grid of rendered samples with their targets, to see what training will see.

Rows: the ink, the skeleton target, and the keypoint targets (endpoints red, junctions green)
over the ink; one column per glyph, headed by its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from inktrace_train.data.augment import Augmenter
from inktrace_train.data.render import Renderer

SCALE = 2  # grid pixels per image pixel
HEADER = 14  # pixels of the name strip above each column


def _tiles(targets) -> List[np.ndarray]:
    """The three RGB uint8 tiles of one sample's targets."""
    ink = np.clip(targets["ink"][0], 0, 1)
    grey = np.repeat(ink[..., None], 3, axis=2)
    skeleton = np.repeat(np.clip(targets["skeleton"][0], 0, 1)[..., None], 3, axis=2)
    points = grey * 0.5
    points[..., 0] = np.maximum(points[..., 0], np.clip(targets["keypoints"][0], 0, 1))
    points[..., 1] = np.maximum(points[..., 1], np.clip(targets["keypoints"][1], 0, 1))
    return [(np.kron(t, np.ones((SCALE, SCALE, 1))) * 255).astype(np.uint8) for t in (grey, skeleton, points)]


def render_samples(
    glyphs: Sequence[Tuple[str, List[np.ndarray]]], augment: Augmenter, render: Renderer, seed: int = 0
) -> np.ndarray:
    """An RGB uint8 grid: one column per (name, unit-coordinate strokes), augmented as in training."""
    columns = []
    for i, (name, strokes) in enumerate(glyphs):
        rng = np.random.default_rng([seed, i])
        tiles = _tiles(render(*augment(strokes, rng)))
        width = tiles[0].shape[1]
        head = np.full((HEADER, width, 3), 255, np.uint8)
        # OpenCV's fonts draw ASCII only, and a name it cannot encode (a file name of undecodable
        # bytes, as Python escapes them) crashes it: the rest as "?".
        label = name[-12:].encode("ascii", "replace").decode()
        cv2.putText(head, label, (1, HEADER - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1, cv2.LINE_AA)
        framed = [np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=64) for t in tiles]
        columns.append(np.concatenate([np.pad(head, ((0, 0), (1, 1), (0, 0)), constant_values=255), *framed]))
    return np.concatenate(columns, axis=1)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB image as PNG (OpenCV wants BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error:  # no writer for the name's suffix, or a path OpenCV cannot open
        written = False
    if not written:
        raise OSError(f"cannot write {path}")

"""``python -m inktrace_train.predict CHECKPOINT INPUT... --out DIR``: trace ink images into strokes.

For each image (a file, or every image in a folder), write ``<name>.png`` -- a labelled panel:
input, skeleton, keypoints, tangent as colour, width, traced strokes -- and ``<name>.svg``, the
traced strokes with their pen widths.

Any image size is accepted. The rule: the image is read as grey; if its border is light it is
dark ink on light paper and is inverted (ink = 1 - grey); it is cropped to its ink's bounding
box, scaled with its aspect kept (area interpolation) so that the longer side is GLYPH_SCALE of
the model's input size (the middle of the training scale range), and centred on an empty canvas.
The SVG is in that canvas's coordinates (viewBox 0 0 size size).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from inktrace_train.errors import ToolError, UserError, fail
from inktrace_train.evaluation.predictor import Predictor, to_canvas
from inktrace_train.evaluation.tracing import Stroke, to_svg

PROG = "inktrace_train.predict"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TILE = 4  # panel pixels per model pixel
LABEL_ROWS = 18  # panel pixels above each tile for its label


def inputs(paths: List[str]) -> List[Path]:
    """Image files, folders expanded to their images (sorted); one line for anything else."""
    found: List[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ToolError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder", 2)
            found += images
        elif p.is_file():
            found.append(p)
        else:
            raise ToolError(f"no such file or directory: {p}", 2)
    return found


def _tile(rgb: np.ndarray, label: str) -> np.ndarray:
    """A map as an upscaled uint8 tile with its label above."""
    big = cv2.resize(
        (np.clip(rgb, 0, 1) * 255).astype(np.uint8), None, fx=TILE, fy=TILE, interpolation=cv2.INTER_NEAREST
    )
    strip = np.full((LABEL_ROWS, big.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, label, (3, LABEL_ROWS - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, big], 0)


def panel(canvas: np.ndarray, maps: Dict[str, np.ndarray], strokes: List[Stroke]) -> np.ndarray:
    """The labelled panel (uint8 RGB): input, skeleton, keypoints, tangent, width, strokes."""
    grey = np.repeat(canvas[..., None], 3, axis=2)
    tiles = [_tile(grey, "input"), _tile(np.repeat(maps["skeleton"][..., None], 3, 2), "skeleton")]
    if "keypoints" in maps:
        kp = grey * 0.4
        kp[..., 0] = np.maximum(kp[..., 0], maps["keypoints"][0])  # endpoints red
        kp[..., 1] = np.maximum(kp[..., 1], maps["keypoints"][1])  # junctions green
        tiles.append(_tile(kp, "ends red, junctions green"))
    angle = (np.degrees(np.arctan2(maps["tangent"][1], maps["tangent"][0])) / 2) % 180  # OpenCV hue: 0..180
    hsv = np.stack([angle, np.full_like(angle, 255), np.clip(maps["skeleton"], 0, 1) * 255], -1).astype(np.uint8)
    tiles.append(_tile(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) / 255.0, "tangent (hue = angle)"))
    if "half_width" in maps:
        # On the model's own ink, not the input's: faint scanned ink is below any fixed threshold.
        width = np.clip(maps["half_width"] / 2.0, 0, 1) * (maps["ink"] >= 0.5)
        tiles.append(_tile(np.repeat(width[..., None], 3, 2), "half width (white = 2 px)"))
    traced = _tile(grey * 0.35, f"{len(strokes)} strokes")
    for i, stroke in enumerate(strokes):
        hue = np.uint8([[[(i * 47) % 180, 220, 255]]])
        colour = tuple(int(c) for c in cv2.cvtColor(hue, cv2.COLOR_HSV2RGB)[0, 0])
        pts = np.round(stroke.points * TILE).astype(np.int32) + [0, LABEL_ROWS]
        cv2.polylines(traced, [pts.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
    tiles.append(traced)
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a checkpoint file, or a run directory (its last stage's best)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--out", required=True, help="folder for <name>.png and <name>.svg (made if missing)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    logging.getLogger("inktrace_train.checkpoint.store").setLevel(logging.ERROR)
    try:
        images = inputs(args.inputs)
        predictor = Predictor(args.checkpoint, args.device)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for path in images:
            canvas = to_canvas(path, predictor.size)
            maps = predictor.maps(canvas)
            strokes = predictor.strokes(maps)
            cv2.imwrite(str(out / f"{path.stem}.png"), cv2.cvtColor(panel(canvas, maps, strokes), cv2.COLOR_RGB2BGR))
            (out / f"{path.stem}.svg").write_text(to_svg(strokes, predictor.size))
            print(f"{path}: {len(strokes)} strokes -> {out / path.stem}.png, .svg")
    except ToolError as e:
        fail(str(e), e.code, prog=PROG)
    except UserError as e:
        fail(str(e), 1, prog=PROG)
    except OSError as e:
        fail(f"{e.filename}: {e.strerror}" if e.filename else str(e), 1, prog=PROG)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

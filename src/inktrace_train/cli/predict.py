"""``python -m inktrace_train.predict CHECKPOINT INPUT... --out DIR``: trace ink images into strokes.

For each image (a file, or every image in a folder) it finds the glyphs (one, or a page of them)
and writes ``<name>.svg``: the traced strokes in the image's own pixel coordinates (viewBox
``0 0 W H``), a ``<g>`` per glyph. An image of one glyph also gets ``<name>.png``, a labelled
panel of that glyph: input, skeleton, keypoints, tangent as colour, width, traced strokes.
``--json`` adds ``<name>.json`` (the image size, each glyph's box and strokes, and how it was
read: model, views, ``--single``), ``--overlay`` ``<name>.overlay.png`` (the strokes drawn over
the input). ``--single`` traces the whole image as one glyph. ``--onnx MODEL`` runs an exported
model with onnxruntime instead of a checkpoint (no torch needed); then every positional argument
is an input. Each glyph is read in four views, the canvas and its 1-px shifts, their maps
averaged (``--views 1``: once, about twice as fast on a CPU).

The image rule (evaluation/imaging.py) and the glyph-finding rule (evaluation/pages.py) are
documented in their modules and in docs/tracing.md. A file that cannot be traced gets one line
and the rest go on; the summary counts both, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from inktrace_train.cli.quiet import loader_quiet
from inktrace_train.cli.views import add_views_option
from inktrace_train.errors import ToolError, os_error_line, reported
from inktrace_train.evaluation.imaging import read_grey, read_ink
from inktrace_train.evaluation.pagefiles import overlay, page_svg
from inktrace_train.evaluation.tracer import Page, Tracer
from inktrace_train.evaluation.tracing import Stroke

PROG = "inktrace_train.predict"
USAGE = "%(prog)s CHECKPOINT INPUT... --out DIR [options]\n       %(prog)s --onnx MODEL INPUT... --out DIR [options]"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
OUTPUTS = (".svg", ".png", ".json", ".overlay.png")  # what one image may write, after its name
TILE = 4  # panel pixels per model pixel
LABEL_ROWS = 18  # panel pixels above each tile for its label


def inputs(paths: List[str]) -> List[Path]:
    """Image files, folders expanded to their images (sorted), each file once; a path that does
    not exist stops the command before anything is traced (a typo, not a bad image)."""
    found: Dict[Path, Path] = {}  # resolved -> as given
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            images = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ToolError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder", 2)
            found.update((f.resolve(), f) for f in images if f.resolve() not in found)
        elif p.is_file():
            found.setdefault(p.resolve(), p)
        else:
            raise ToolError(f"no such file or directory: {p}", 2)
    return list(found.values())


def output_names(images: List[Path], out: Path) -> Dict[Path, str]:
    """Each image's output name in ``out``: its stem, or where two images share a stem (a.png
    and a.jpg, or 1.png in two folders) its file name, then a number, so that no two images'
    outputs meet. Nothing predict did not write is replaced: an output path that exists must be
    an earlier run's output (its ``<name>.svg`` beside it); with ``--out`` the images' own
    folder, ``a.png``'s panel would replace the image."""
    stems = [p.stem for p in images]
    names: Dict[Path, str] = {}
    taken: set = set()  # output file names given out so far
    for path, stem in zip(images, stems, strict=True):
        base = stem if stems.count(stem) == 1 else path.name
        name, k = base, 2
        while any(f"{name}{suffix}" in taken for suffix in OUTPUTS):
            name, k = f"{base}-{k}", k + 1
        taken.update(f"{name}{suffix}" for suffix in OUTPUTS)
        names[path] = name
    inputs_here = {p.resolve() for p in images}
    for path, name in names.items():
        for suffix in OUTPUTS:
            target = out / f"{name}{suffix}"
            if target.resolve() in inputs_here:
                raise ToolError(
                    f"--out {out}: {name}{suffix} of {path} would overwrite the input {target}; "
                    "write the outputs to another folder",
                    2,
                )
            if target.exists() and not (out / f"{name}.svg").is_file():
                raise ToolError(
                    f"--out {out}: {target} exists and is not an output of predict (no {name}.svg beside it); "
                    "write the outputs to another folder",
                    2,
                )
    return names


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
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        usage=USAGE,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a checkpoint file or run directory (not with --onnx), then image files or folders of images",
    )
    p.add_argument("--out", required=True, help="folder for the outputs (made if missing)")
    p.add_argument(
        "--onnx", metavar="MODEL", help="an exported model (ckpt export --format onnx) instead of a checkpoint"
    )
    p.add_argument("--single", action="store_true", help="trace each image as one glyph (no glyph finding)")
    p.add_argument(
        "--json",
        action="store_true",
        help="also write <name>.json: image size, glyph boxes, strokes, how they were read",
    )
    p.add_argument("--overlay", action="store_true", help="also write <name>.overlay.png: strokes over the input")
    p.add_argument("--device", default="cpu", help="torch device (default cpu; not with --onnx)")
    add_views_option(p)
    return p


def trace_file(tracer: Tracer, path: Path, out: Path, name: str, args: argparse.Namespace) -> Page:
    """Trace one image and write its outputs, ``out/<name>.*``."""
    grey = read_grey(path, tracer.max_pixels)
    page = tracer.trace_page(grey, single=args.single)
    (out / f"{name}.svg").write_text(page_svg(page))
    if len(page.glyphs) == 1:  # the panel shows one glyph's maps: the model runs once more for it
        _, canvas, _ = next(tracer.glyphs(read_ink(grey), args.single))
        maps = tracer.maps(canvas)
        image = panel(canvas, maps, tracer.strokes(maps))
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if args.json:  # with how it was read, so the file says which reading its strokes come from
        reading = {"model": args.onnx or args.paths[0], "views": args.views, "single": args.single}
        (out / f"{name}.json").write_text(json.dumps({**page.to_json(), "reading": reading}) + "\n")
    if args.overlay:
        cv2.imwrite(str(out / f"{name}.overlay.png"), overlay(grey, page))
    return page


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    failed = traced = 0
    with loader_quiet(), reported(PROG):
        if args.onnx:
            if args.device != "cpu":
                raise ToolError("--device is for a checkpoint: an --onnx model runs on onnxruntime's CPU", 2)
            checkpoints = [a for a in args.paths if Path(a).suffix.lower() in (".pth", ".pt")]
            if checkpoints:
                raise ToolError(f"{checkpoints[0]} is a checkpoint: with --onnx every PATH is an image or a folder", 2)
            images = inputs(args.paths)
            tracer = Tracer.from_onnx(args.onnx, views=args.views)
        else:
            if len(args.paths) < 2:
                raise ToolError("give a checkpoint and at least one image (or --onnx MODEL and images)", 2)
            images = inputs(args.paths[1:])
            tracer = Tracer.from_checkpoint(args.paths[0], args.device, views=args.views)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ToolError(f"--out {out} is a file: give a folder (made if missing)", 2)
        names = output_names(images, out)
        out.mkdir(parents=True, exist_ok=True)
        for path in images:
            try:
                page = trace_file(tracer, path, out, names[path], args)
            except (ToolError, OSError) as e:  # this file only: say so in one line, trace the rest
                failed += 1
                print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
                continue
            traced += 1
            print(f"{path}: {len(page.glyphs)} glyphs, {len(page.strokes)} strokes -> {out / names[path]}.svg")
        print(f"traced {traced} of {traced + failed} images, {failed} failed")
        sys.stdout.flush()  # inside: a reader that went away (| head) ends it quietly
    if failed:
        raise SystemExit(1)


def one_line(e: Exception) -> str:
    return os_error_line(e) if isinstance(e, OSError) else str(e)


if __name__ == "__main__":
    main()

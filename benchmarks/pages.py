"""A big page through the Tracer: glyphs found, glyphs per second, peak memory.

Usage:
    PYTHONPATH=src python benchmarks/pages.py CHECKPOINT|MODEL.onnx [--side 6000] [--glyph 200] [--batch 64] [--views 4]

Draws a square page of ``side`` px holding a grid of test-split KanjiVG glyphs of ``glyph`` px
(spaced by 0.3 of their size), traces it with ``Tracer.from_checkpoint`` (or ``from_onnx`` for an
.onnx file) and prints: glyphs drawn and found, seconds (wall and CPU: on a shared machine only
CPU time is repeatable), glyphs per CPU second (the model and the tracer together, and the model
alone), and the process's peak resident memory before and after tracing (``ru_maxrss``: the
page, the model and the libraries are in both). ``--views 1`` reads each glyph once instead of
predict's default four views.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from inktrace_train import Tracer
from inktrace_train.cli.views import add_views_option
from inktrace_train.config.schema import DataConfig
from inktrace_train.data.kanjivg import KanjiVGStrokes
from inktrace_train.data.page import blank_page, draw_glyph


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def draw(side: int, glyph: int) -> tuple:
    d = DataConfig()
    split = KanjiVGStrokes("test", d.val_fraction, d.test_fraction, d.cache_dir)
    page, pitch, n = blank_page(side, side), int(glyph * 1.3), 0
    for y in range(0, side - glyph, pitch):
        for x in range(0, side - glyph, pitch):
            draw_glyph(page, split.glyph(n % len(split)), x, y, glyph)
            n += 1
    return page, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a checkpoint or run directory, or an exported .onnx file")
    p.add_argument("--side", type=int, default=6000)
    p.add_argument("--glyph", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    add_views_option(p)
    args = p.parse_args()
    load = Tracer.from_onnx if args.model.endswith(".onnx") else Tracer.from_checkpoint
    tracer = load(args.model, batch_size=args.batch, views=args.views)
    model_seconds = []
    maps = tracer._maps

    def timed(ink: np.ndarray) -> dict:
        start = time.process_time()
        out = maps(ink)
        model_seconds.append(time.process_time() - start)
        return out

    tracer._maps = timed  # the model's share of the time (its views too); the public API has no hook for it
    page, drawn = draw(args.side, args.glyph)
    before = peak_mb()
    start, cpu = time.perf_counter(), time.process_time()
    result = tracer.trace_page(page)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    found = len(result.glyphs)
    print(f"page {args.side}x{args.side}, {drawn} glyphs of {args.glyph} px drawn, {found} found")
    print(
        f"traced in {seconds:.1f} s wall, {cpu:.1f} s CPU: {found / cpu:.1f} glyphs per CPU second "
        f"(model alone {found / sum(model_seconds):.1f}; wall {found / seconds:.1f}/s on this machine's load)"
    )
    print(f"peak RSS: {before:.0f} MB before tracing (libraries, model, page), {peak_mb():.0f} MB after")


if __name__ == "__main__":
    main()

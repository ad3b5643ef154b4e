"""Single-process data throughput: the Renderer alone and InkDataset.__getitem__.

Usage:
    PYTHONPATH=src python benchmarks/render.py --seconds 5 [--img-size 64] [--cache-dir DIR] [--set KEY=VALUE ...]

``--set`` changes a DataConfig field (``--set pen_pressure=1 --set pen_width_max=7``), e.g. to
measure what a pen option costs.

Prints samples/s for each source (KanjiVG train split, synthetic strokes):
``render`` times Renderer.__call__ on pre-augmented glyphs; ``dataset`` times the
whole sample (glyph choice, augmentation, all targets, mask, tensors).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace

import numpy as np
import torch

from inktrace_train.config.schema import DataConfig
from inktrace_train.data import InkDataset, KanjiVGStrokes, Renderer, SyntheticStrokes
from inktrace_train.train.build import make_augmenter


def rate(fn, seconds: float) -> float:
    """Calls of fn(i) per second over about ``seconds`` (after a short warm-up)."""
    for i in range(20):
        fn(i)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            fn(n)
            n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--cache-dir", default=None, help="KanjiVG cache folder (default: user cache)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a DataConfig field")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)

    types = {f.name: type(getattr(DataConfig(), f.name)) for f in fields(DataConfig)}
    changes = dict(item.split("=", 1) for item in args.set)
    unknown = sorted(set(changes) - set(types))
    if unknown:
        parser.error(f"not DataConfig fields: {', '.join(unknown)}")
    cfg = replace(DataConfig(), img_size=args.img_size, **{k: types[k](v) for k, v in changes.items()})
    augment = make_augmenter(cfg)
    renderer = Renderer(args.img_size)
    sources = {
        "kanjivg": KanjiVGStrokes("train", cfg.val_fraction, cfg.test_fraction, args.cache_dir),
        "synthetic": SyntheticStrokes(cfg.max_strokes),
    }
    changed = " ".join(args.set) or "defaults"
    print(f"img_size={args.img_size}, one process, {args.seconds:g} s per measurement, {changed}")
    for name, source in sources.items():
        rng = np.random.default_rng(0)
        pool = [augment(source.glyph(int(rng.integers(len(source))), rng), rng) for _ in range(500)]
        strokes = np.mean([len(s) for s, _ in pool])
        render_rate = rate(lambda i, pool=pool: renderer(*pool[i % len(pool)]), args.seconds)
        dataset = InkDataset(source, augment, renderer, seed=0, stream=0, mask_ratio=0.25, patch_size=8, fixed=False)
        dataset_rate = rate(lambda i, dataset=dataset: dataset[(0, i)], args.seconds)
        print(
            f"{name:>9} ({strokes:4.1f} strokes/glyph): render {render_rate:7.0f} samples/s, "
            f"dataset {dataset_rate:7.0f} samples/s"
        )


if __name__ == "__main__":
    main()

"""Forward + backward time and work of InkTraceModel on this machine's CPU.

Run: ``PYTHONPATH=src python benchmarks/model.py [--batch 32] [--size 64] [--steps 5]``

Times one training step without the optimizer (forward, StructureLoss, backward) on a
batch of random images with a quarter of the 8x8 patches hidden, for the default, the tiny
and the large config (``conf/experiment/large_model.yaml``'s model), with structural and with
full heads. Prints the median of ``--steps`` timed steps after two warm-up steps, the step's
floating-point operations (torch's FLOP counter: matrix products and convolutions, the same on
any device) and both as ratios to the default model with the same heads, the figure that sizes a
larger model's training from a measured default one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from inktrace_train.config.schema import LossWeights, ModelConfig
from inktrace_train.model.losses import StructureLoss
from inktrace_train.model.network import InkTraceModel

TINY = dict(embed_dim=32, num_layers=1, num_heads=2, stem_channels=[8, 16, 32], decoder_channels=[32, 16, 8])
LARGE_FILE = Path(__file__).resolve().parents[1] / "conf" / "experiment" / "large_model.yaml"


def large() -> dict:
    """The model keys of the large experiment, from its file (the one place they are set)."""
    return OmegaConf.to_container(OmegaConf.load(LARGE_FILE).model)


def make_batch(batch: int, size: int, patch: int) -> dict:
    """Random well-formed inputs and targets; ~25% of patches hidden."""
    g = torch.Generator().manual_seed(0)
    cells = (torch.rand(batch, 1, size // patch, size // patch, generator=g) > 0.25).float()
    visible = cells.repeat_interleave(patch, 2).repeat_interleave(patch, 3)
    ink = (torch.rand(batch, 1, size, size, generator=g) > 0.8).float()
    skeleton = ink * (torch.rand(batch, 1, size, size, generator=g) > 0.6).float()
    return {
        "image": torch.cat([ink * visible, visible], dim=1),
        "visible": visible,
        "ink": ink,
        "skeleton": skeleton,
        "keypoints": torch.rand(batch, 2, size, size, generator=g) * skeleton,
        "tangent": torch.rand(batch, 2, size, size, generator=g) * skeleton,
        "width": torch.rand(batch, 1, size, size, generator=g) * ink,
        "offset": torch.rand(batch, 2, size, size, generator=g) * ink,
    }


def time_step(cfg: ModelConfig, batch: dict, steps: int) -> tuple[float, float]:
    """Median milliseconds of forward + loss + backward, and that step's GFLOP."""
    torch.manual_seed(0)
    model = InkTraceModel(**asdict(cfg)).train()
    loss_fn = StructureLoss(**asdict(LossWeights()), full_heads=cfg.full_heads)

    def step() -> None:
        loss_fn(model(batch["image"]), batch)["total"].backward()
        model.zero_grad(set_to_none=True)

    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        step()
        if i >= 2:  # the first steps allocate and pick kernels
            times.append((time.perf_counter() - start) * 1e3)
    with FlopCounterMode(display=False) as counter:
        step()
    return statistics.median(times), counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    # Denormal floats in the backward pass make CPU steps up to ~20x slower.
    torch.set_flush_denormal(True)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch} x 2 x {args.size} x {args.size}"
    )
    default: dict[bool, tuple[float, float]] = {}
    for name, overrides in (("default", {}), ("tiny", TINY), ("large", large())):
        for full_heads in (False, True):
            cfg = ModelConfig(**{**overrides, "full_heads": full_heads})
            params = sum(p.numel() for p in InkTraceModel(**asdict(cfg)).parameters())
            batch = make_batch(args.batch, args.size, 2 ** len(cfg.stem_channels))
            ms, gflop = time_step(cfg, batch, args.steps)
            base_ms, base_gflop = default.setdefault(full_heads, (ms, gflop))
            print(
                f"{name:8s} full_heads={full_heads!s:5s} params {params:>9,d}  forward+backward {ms:8.1f} ms/batch"
                f" ({ms / base_ms:4.2f}x default)  {gflop:7.2f} GFLOP ({gflop / base_gflop:4.2f}x)"
            )


if __name__ == "__main__":
    main()

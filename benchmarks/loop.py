"""What the training loop itself costs: ``Trainer.train_epoch`` against a hand-written loop that
does the same work, interleaved A/B in one process.

Run: ``python benchmarks/loop.py [--model null|default|both] [--steps 200] [--rounds 9] [--device cpu] [--threads N]``

The hand loop does forward, loss, backward, gradient clipping, AdamW, the schedule step, and reads
the loss every 20 steps. The Trainer runs with every normal feature on: a drawn progress bar
(into a buffer), its loss/NaN bookkeeping, TensorBoard every 20 steps. ``null`` is a 32->32 linear
model with a 7-term loss dict, so that the loop's own cost is what is measured; ``default`` is the
default InkTraceModel with StructureLoss on 64x64 batches. Prints the median ms per step of each
and the overhead in microseconds per step (the median of the per-round differences; target:
<= 30 us on the null model) and their ratio. Many short rounds (100 steps, 101 pairs) give a
stable median on a noisy machine: 21 rounds of 200 steps varied by +-20 us between runs, while an
A/A test (hand loop against itself) of the default gives 0 +- 3 us.

On the CPU the null model runs with one intra-op thread (``--threads`` to change it): its ops are
too small to be split, so a second thread only spins, on the core where the TensorBoard writer
process handles the null model's absurd 50 logs a second. With two threads that work lands on the
timed loop, and on 2 cores the per-round differences spread twice as wide (figures in
docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List

import torch
from torch import nn

from inktrace_train.config.schema import LossWeights, ModelConfig
from inktrace_train.model.losses import StructureLoss
from inktrace_train.model.network import InkTraceModel
from inktrace_train.run.ranks import Ranks
from inktrace_train.train.distributed import Distributed
from inktrace_train.train.logger import RunLogger
from inktrace_train.train.optim import WarmupCosine
from inktrace_train.train.trainer import Trainer

LOG_EVERY = 20


class SevenTerms(nn.Module):
    """A loss shaped like StructureLoss's (6 terms + total, a plain dict of 0-d tensors, as any
    user's loss returns) for the null model. Both loops call it, so its own cost is not the
    framework's; recording its terms is."""

    def forward(self, outputs: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        y, t = outputs["y"], batch["target"]
        terms = {
            "skeleton": (y - t).pow(2).mean(),
            "tangent": (y - t).abs().mean(),
            "ink": y.mean().abs(),
            "keypoints": (y * t).mean().abs(),
            "width": y.pow(2).mean(),
            "offset": t.pow(2).mean() * 0 + y[:, 0].mean().abs(),
        }
        return {**terms, "total": torch.stack(list(terms.values())).sum()}


class NullModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"y": self.linear(x)}


class Batches(list):
    """A fixed list of device-resident batches with the attributes the Trainer reads."""

    batch_size: int = 32

    sampler = SimpleNamespace(epoch=0, start_batch=0)  # the Trainer sets these on its loader's sampler


def setup(kind: str, steps: int, device: torch.device):
    torch.manual_seed(0)
    if kind == "null":
        model, loss_fn = NullModel(), SevenTerms()
        batches = Batches({"image": torch.randn(32, 32), "target": torch.randn(32, 32)} for _ in range(steps))
    else:
        from model import make_batch  # benchmarks/model.py: random well-formed 64x64 batches

        cfg = ModelConfig()
        model, loss_fn = InkTraceModel(**asdict(cfg)), StructureLoss(**asdict(LossWeights()), full_heads=False)
        one = make_batch(32, 64, 8)
        batches = Batches(one for _ in range(steps))
    batches = Batches({k: v.to(device) for k, v in b.items()} for b in batches)
    return model.to(device), loss_fn, batches


def hand_loop(model: nn.Module, loss_fn: nn.Module, batches: List[dict]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    schedule = WarmupCosine(optimizer, total_steps=10**6, warmup_steps=10, final_lr_ratio=0.01)

    def epoch() -> None:
        for i, batch in enumerate(batches):
            loss = loss_fn(model(batch["image"]), batch)["total"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
            if (i + 1) % LOG_EVERY == 0:
                loss.item()

    return epoch


def framework_loop(
    model: nn.Module, loss_fn: nn.Module, batches: List[dict], tb: Path, cleanup: contextlib.ExitStack
) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    logger = RunLogger(tb, "bench", progress=True)
    cleanup.callback(logger.close)  # its writer process is done with ``tb`` before ``tb`` goes
    trainer = Trainer(
        model,
        loss_fn,
        optimizer,
        WarmupCosine(optimizer, total_steps=10**6, warmup_steps=10, final_lr_ratio=0.01),
        batches,
        batches,
        lambda: None,
        lambda m: 0.0,
        None,
        logger,
        config={},
        metadata={},
        dist=Distributed(Ranks.from_env(), next(model.parameters()).device),
        epochs=10**6,
        grad_accum_steps=1,
        grad_clip=1.0,
        log_every_n_steps=LOG_EVERY,
        save_every_n_steps=None,
        mask_ratio=0.0,
        amp_dtype=None,
        ema_decay=0.0,
    )

    def epoch() -> None:
        trainer.state.step_in_epoch = 0
        trainer.train_epoch(trainer.state.epoch)

    return epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(kind: str, steps: int, rounds: int, device: torch.device) -> Dict[str, float]:
    """Median ms/step of each loop over ``rounds`` interleaved epochs of ``steps`` steps."""
    with tempfile.TemporaryDirectory() as tb, contextlib.ExitStack() as cleanup:
        loops = {
            "hand": hand_loop(*setup(kind, steps, device)),
            "framework": framework_loop(*setup(kind, steps, device), Path(tb), cleanup),
        }
        times: Dict[str, List[float]] = {name: [] for name in loops}
        with contextlib.redirect_stderr(io.StringIO()):  # the progress bar draws, into a buffer
            for r in range(rounds + 1):
                for name, run in loops.items() if r % 2 else reversed(loops.items()):
                    sync(device)
                    start = time.perf_counter()
                    run()
                    sync(device)
                    if r:  # round 0 warms up
                        times[name].append((time.perf_counter() - start) / steps * 1e3)
    hand, framework = statistics.median(times["hand"]), statistics.median(times["framework"])
    # Paired by round (each round times both loops back to back), so slow drift of the machine cancels.
    paired = statistics.median(f - h for f, h in zip(times["framework"], times["hand"], strict=True))
    return {"hand_ms": hand, "framework_ms": framework, "overhead_us": paired * 1e3, "ratio": framework / hand}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["null", "default", "both"], default="both")
    parser.add_argument("--steps", type=int, default=0, help="steps per timed epoch (default: 100 null, 8 default)")
    parser.add_argument("--rounds", type=int, default=0, help="A/B pairs (default: 101 null, 21 default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: 1 null, all default)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    cores = torch.get_num_threads()
    for kind in ("null", "default") if args.model == "both" else (args.model,):
        torch.set_num_threads(args.threads or (1 if kind == "null" else cores))
        print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
        steps = args.steps or (100 if kind == "null" else 8)
        m = measure(kind, steps, args.rounds or (101 if kind == "null" else 21), device)
        print(
            f"loop overhead, {kind:7s} model: hand {m['hand_ms']:.3f} ms/step, framework {m['framework_ms']:.3f} "
            f"ms/step, overhead {m['overhead_us']:+.0f} us/step, ratio {m['ratio']:.3f}"
        )


if __name__ == "__main__":
    main()

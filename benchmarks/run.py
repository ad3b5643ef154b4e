"""The benchmark suite: one command, one table of figures (printed, not asserted).

Run: ``python benchmarks/run.py [--device cpu|cuda] [--quick]``

Rows: the loop's own cost against a hand-written loop (null and default model, A/B interleaved);
``--cfg job`` start-up; launch to the first optimizer step; data samples/s of each renderer (one
process, the DataLoader with workers, the device renderer's batch on the device); model-only
samples/s (forward, loss, backward, AdamW on device-resident batches; on CUDA also channels_last
and torch.compile); the full pipeline (``python -m inktrace_train``) with each renderer; checkpoint
save time and the stall a background save causes, on the default model and a ~25 M-parameter one;
checkpoint load time.
On a GPU machine the whole suite is meant to finish within 8 minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path
from typing import Callable, List, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loop
from inktrace_train.checkpoint.store import BackgroundSaver, Checkpoint, CheckpointManager, load_checkpoint
from inktrace_train.config.schema import DataConfig, LossWeights, ModelConfig
from inktrace_train.model.losses import StructureLoss
from inktrace_train.model.network import InkTraceModel, parameter_groups
from model import make_batch

Row = Tuple[str, str]
TINY_RUN = [
    "model=tiny",
    "data=synthetic",
    "training.epochs=1",
    "data.train_samples=64",
    "data.val_samples=32",
    "data.num_workers=0",
]


def median_time(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loop_rows(device: torch.device, quick: bool) -> List[Row]:
    rows = []
    for kind, steps, rounds in (("null", 100, 101), ("default", 4 if device.type == "cpu" else 100, 9)):
        m = loop.measure(kind, steps, rounds // 2 if quick else rounds, device)
        rows.append(
            (
                f"loop overhead, {kind} model (framework vs hand loop)",
                f"{m['overhead_us']:+.0f} us/step ({m['framework_ms']:.3f} vs {m['hand_ms']:.3f} ms), "
                f"ratio {m['ratio']:.3f}",
            )
        )
    return rows


def startup_rows(work: Path) -> List[Row]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cfg_job = median_time(
        lambda: subprocess.run([sys.executable, "-m", "inktrace_train", "--cfg", "job"], capture_output=True, env=env),
        3,
    )
    hook = work / "hook"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inktrace_train",
            *TINY_RUN,
            "training.save_every_n_steps=1",
            f"hydra.run.dir={work / 'r'}",
        ],
        cwd=work,
        env=dict(env, INKTRACE_SAVE_HOOK=str(hook)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (hook.is_file() and hook.read_text()) and proc.poll() is None:
        time.sleep(0.002)
    first_step = time.perf_counter() - start
    proc.wait()
    return [
        ("start-up: python -m inktrace_train --cfg job", f"{cfg_job:.2f} s"),
        ("launch to the first optimizer step (tiny run, its first save)", f"{first_step:.2f} s"),
    ]


def data_rows(device: torch.device, seconds: float, workers: int) -> List[Row]:
    """Samples/s of each renderer: the CPU renderer in one process and in a DataLoader with
    workers; the device renderer's worker half (augment + centerlines) likewise, and its device
    half (the whole batch on ``device``)."""
    from inktrace_train.data import EpochSampler, InkDataset, Renderer
    from inktrace_train.data.device_batch import Centerlines, collate_centerlines
    from inktrace_train.data.device_render import DeviceRenderer
    from inktrace_train.train.build import make_augmenter, make_source

    cfg = replace(DataConfig(), source="synthetic" if os.environ.get("BENCH_SYNTHETIC") else "kanjivg")
    augment = make_augmenter(cfg)
    source = make_source(cfg, "train")
    rows = []
    for name, render, collate in (
        ("cpu renderer", Renderer(cfg.img_size), None),
        ("device renderer, workers' half", Centerlines(cfg.img_size), collate_centerlines),
    ):
        dataset = InkDataset(source, augment, render, seed=0, stream=0, mask_ratio=0.25, patch_size=8, fixed=False)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            dataset[(0, n)]
            n += 1
        one = n / (time.perf_counter() - start)
        loader = torch.utils.data.DataLoader(
            dataset,
            sampler=EpochSampler(10**6, 0, 64, drop_last=True),
            batch_size=64,
            num_workers=workers,
            collate_fn=collate,
        )
        it, n = iter(loader), 0
        next(it)  # workers started
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            n += len(next(it)["visible"])
        many = n / (time.perf_counter() - start)
        rows += [
            (f"data ({cfg.source}, {name}): one process", f"{one:,.0f} samples/s"),
            (f"data ({cfg.source}, {name}): DataLoader, {workers} workers", f"{many:,.0f} samples/s"),
        ]
    size = 256 if device.type == "cuda" else 32
    batch = collate_centerlines([dataset[(0, i)] for i in range(size)])
    batch = {k: v.to(device) for k, v in batch.items()}
    renderer = DeviceRenderer(cfg.img_size)
    renderer(batch)
    loop.sync(device)
    repeat = 20 if device.type == "cuda" else 3
    per_batch = median_time(lambda: (renderer(batch), loop.sync(device)), repeat)
    rows.append(
        (
            f"data ({cfg.source}, device renderer, device half on {device}, batch {size})",
            f"{size / per_batch:,.0f} samples/s",
        )
    )
    return rows


def pipeline_rows(device: torch.device, work: Path, quick: bool) -> List[Row]:
    """``python -m inktrace_train`` itself (loaders, renderer, model, logging, checkpoints): the
    median of its logged samples/s after the first log interval (start-up, compilation) and those
    that drain the batches prefetched meanwhile."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cuda = device.type == "cuda"
    batch, samples = (256, 256 * (120 if quick else 240)) if cuda else (32, 32 * 24)
    workers, log_every = min(16, os.cpu_count() or 1), 4
    # The workers fill their prefetch queues (2 batches each) while the run starts (and compiles
    # on CUDA): the intervals that drain them measure the step alone, not the data's pace.
    skip = 1 + -(-2 * workers // log_every)
    rows = []
    for renderer in ("device", "cpu") if cuda else ("cpu", "device"):
        run = work / f"pipeline-{renderer}"
        args = [
            f"training.device={device.type}",
            f"data.renderer={renderer}",
            f"training.batch_size={batch}",
            f"data.train_samples={samples}",
            f"data.val_samples={batch}",
            "training.epochs=1",
            f"training.log_every_n_steps={log_every}",
            f"data.num_workers={workers}",
            f"hydra.run.dir={run}",
        ]
        proc = subprocess.run([sys.executable, "-m", "inktrace_train", *args], cwd=work, capture_output=True, text=True)
        if proc.returncode:
            rows.append((f"full pipeline, data.renderer={renderer}", "failed: " + proc.stderr.strip()[-300:]))
            continue
        events = EventAccumulator(str(run / "tb/structural"), size_guidance={"scalars": 0}).Reload()
        rates = [e.value for e in events.Scalars("structural/train/samples_per_s")][skip:]
        rows.append(
            (
                f"full pipeline (python -m inktrace_train), default model, batch {batch}, data.renderer={renderer}",
                f"{statistics.median(rates):,.0f} samples/s",
            )
        )
    return rows


def model_rate(device: torch.device, batch: dict, nhwc: bool, compiled: bool, quick: bool) -> float:
    """Samples/s of forward, loss, backward and AdamW on a device-resident batch."""
    torch.manual_seed(0)
    model = InkTraceModel(**asdict(ModelConfig(full_heads=True))).to(device)
    loss_fn = StructureLoss(**asdict(LossWeights()), full_heads=True)
    optimizer = torch.optim.AdamW(parameter_groups(model, 1e-4), lr=1e-3, fused=device.type == "cuda" or None)
    image = batch["image"]
    if nhwc:
        model, image = model.to(memory_format=torch.channels_last), image.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(forward(image), batch)["total"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(10 if compiled else 3):
        step()
    loop.sync(device)
    steps = 5 if device.type == "cpu" else (50 if quick else 200)
    seconds = median_time(lambda: ([step() for _ in range(steps)], loop.sync(device)), 3) / steps
    return len(image) / seconds


def model_rows(device: torch.device, quick: bool) -> List[Row]:
    size = 32 if device.type == "cpu" else 256
    batch = {k: v.to(device) for k, v in make_batch(size, 64, 8).items()}
    variants = [("eager", False, False)]
    if device.type == "cuda":
        variants += [("channels_last", True, False), ("channels_last + compile", True, True)]
    return [
        (
            f"model only, default model + all heads, batch {size}: {name}",
            f"{model_rate(device, batch, *v, quick):,.0f} samples/s",
        )
        for name, *v in variants
    ]


def checkpoint_rows(work: Path) -> List[Row]:
    rows = []
    configs = {
        "default model": ModelConfig(full_heads=True),
        "~25 M parameters": ModelConfig(embed_dim=512, num_layers=8, num_heads=8, full_heads=True),
    }
    for name, cfg in configs.items():
        model = InkTraceModel(**asdict(cfg))
        optimizer = torch.optim.AdamW(model.parameters())
        model(torch.rand(1, 2, 64, 64))["skeleton"].mean().backward()
        optimizer.step()
        params = sum(p.numel() for p in model.parameters())
        ckpt = Checkpoint(model_state_dict=model.state_dict(), optimizer_state_dict=optimizer.state_dict(), epoch=1)
        manager = CheckpointManager(work / name.replace(" ", "_"), keep_last_n=1, save_interval=1000)
        save = median_time(lambda manager=manager, ckpt=ckpt: manager.save(ckpt, is_best=False), 3)
        saver = BackgroundSaver(manager)
        stalls = []
        for _ in range(3):
            saver.wait()
            start = time.perf_counter()
            saver.save(ckpt, is_best=False)
            stalls.append(time.perf_counter() - start)
        saver.wait()
        load = median_time(lambda manager=manager: load_checkpoint(manager.directory / "checkpoint_latest.pth"), 3)
        size = (manager.directory / "checkpoint_latest.pth").stat().st_size / 2**20
        rows.append(
            (
                f"checkpoint, {name} ({params / 1e6:.1f} M params, {size:.0f} MiB)",
                f"save {save * 1e3:.0f} ms; a background save stalls training "
                f"{statistics.median(stalls) * 1e3:.0f} ms; load {load * 1e3:.0f} ms",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# inktrace_train benchmarks, {date.today()}, {device} ({card}), torch {torch.__version__}")
    print(f"# {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads")
    rows: List[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for part in (
            lambda: loop_rows(device, args.quick),
            lambda: startup_rows(work),
            lambda: data_rows(device, 2.0 if args.quick else 5.0, args.workers),
            lambda: model_rows(device, args.quick),
            lambda: pipeline_rows(device, work, args.quick),
            lambda: checkpoint_rows(work),
        ):
            for row in part():
                rows.append(row)
                print(f"| {row[0]} | {row[1]} |", flush=True)


if __name__ == "__main__":
    main()

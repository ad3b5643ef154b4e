"""The device renderer (``data.renderer=device``) against the CPU renderer, the reference.

Tolerances, per target, on 200 KanjiVG and 100 synthetic glyphs through the real dataset
(augmentation, patch mask); docs/datasets.md states the same:
- skeleton, keypoints (endpoint and junction spots): identical;
- tangent: within 1e-4 (float32 on the device, float64 on the CPU);
- ink coverage: mean |difference| <= 1e-4 and at most 0.1 % of pixels differ by more than 1e-3
  (jump flooding finds a nearer centerline point than the CPU renderer's distance transform at a
  few pixels where strokes meet: there the device's coverage is the more accurate one);
- width and offset: within 0.1 px at >= 99.9 % of pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import kill_at_step, latest_step, run_cli
from inktrace_train.config.schema import DataConfig
from inktrace_train.data import InkDataset, KanjiVGStrokes, Renderer, SyntheticStrokes
from inktrace_train.data.centerline import resample
from inktrace_train.data.device_batch import Centerlines, collate_centerlines
from inktrace_train.data.device_render import DeviceRenderer
from inktrace_train.train.build import make_augmenter, make_device_renderer
from test_resume import RUN, assert_same_run, losses

SIZE = 64
# The device renderer runs here; CI has only a CPU (benchmarks/gpu.sh sets cuda).
DEVICE = torch.device(os.environ.get("INKTRACE_TEST_DEVICE", "cpu"))


def render_on_device(items):
    batch = {k: v.to(DEVICE) for k, v in collate_centerlines(items).items()}
    return {k: v.cpu() for k, v in make_device_renderer(DataConfig(img_size=SIZE))(batch).items()}


def datasets(source):
    augment = make_augmenter(DataConfig(img_size=SIZE))
    common = dict(seed=3, stream=0, mask_ratio=0.25, patch_size=8, fixed=False)
    return tuple(InkDataset(source, augment, render, **common) for render in (Renderer(SIZE), Centerlines(SIZE)))


def render_both(source, n):
    """The CPU renderer's samples (stacked) and the device renderer's, for keys (0, 0..n-1)."""
    cpu_set, device_set = datasets(source)
    cpu = {k: torch.stack([cpu_set[0, i][k] for i in range(n)]) for k in cpu_set[0, 0]}
    device = {}
    for lo in range(0, n, 50):  # batches of 50, as a loader would hand them over
        batch = render_on_device([device_set[0, i] for i in range(lo, min(lo + 50, n))])
        for k, v in batch.items():
            device.setdefault(k, []).append(v)
    return cpu, {k: torch.cat(v) for k, v in device.items()}


@pytest.fixture(scope="module", params=["kanjivg", "synthetic"])
def rendered(request):
    if request.param == "kanjivg":
        source, n = KanjiVGStrokes(split="train", val_fraction=0.05, test_fraction=0.05, cache_dir=None), 200
    else:
        source, n = SyntheticStrokes(max_strokes=6), 100
    return render_both(source, n)


@pytest.mark.slow
def test_skeleton_keypoints_tangent_and_mask_match(rendered):
    cpu, device = rendered
    assert set(cpu) == set(device)
    for key in ("skeleton", "keypoints", "visible"):
        assert torch.equal(cpu[key], device[key]), key
    assert cpu["skeleton"].sum() > 1000 and cpu["keypoints"].eq(1).sum() > 100  # not trivially empty
    assert (cpu["tangent"] - device["tangent"]).abs().max() <= 1e-4


def test_ink_width_and_offset_within_the_stated_tolerances(rendered):
    cpu, device = rendered
    ink = (cpu["ink"] - device["ink"]).abs()
    assert ink.mean() <= 1e-4
    assert (ink > 1e-3).float().mean() <= 1e-3
    for key in ("width", "offset"):
        far = ((cpu[key] - device[key]).abs() > 0.1).float().mean()
        assert far <= 1e-3, (key, far)
    image = torch.cat([device["ink"] * device["visible"], device["visible"]], 1)
    assert torch.equal(device["image"], image)


def test_where_the_inks_differ_the_device_is_nearer_the_exact_coverage():
    """Exact coverage of a disk pen, box-filtered: clip(hw + 0.5 - d) with d the distance to the
    centerline sampled every 0.02 px, brute force."""
    source = KanjiVGStrokes(split="train", val_fraction=0.05, test_fraction=0.05, cache_dir=None)
    cpu_set, device_set = datasets(source)
    rng_keys = range(60)
    device = render_on_device([device_set[0, i] for i in rng_keys])["ink"][:, 0]
    errors = {"cpu": [], "device": []}
    for i in rng_keys:
        cpu = cpu_set[0, i]["ink"][0]
        ys, xs = np.nonzero((cpu - device[i]).abs().numpy() > 1e-3)
        if not len(ys):
            continue
        rng = np.random.default_rng([cpu_set.seed, cpu_set.stream, 0, i])  # the sample's own draws
        glyph = source.glyph(int(rng.integers(len(source))), rng)
        strokes, pen = cpu_set.augment(glyph, rng)
        samples, sid, _ = resample([np.asarray(s, np.float64) for s in strokes], step=0.02)
        centre = np.stack([xs + 0.5, ys + 0.5], 1)
        dist = np.linalg.norm(centre[:, None] - samples[None], axis=2)
        exact = np.clip(pen.half_width[sid[dist.argmin(1)]] + 0.5 - dist.min(1), 0, 1)
        errors["cpu"].append(np.abs(cpu.numpy()[ys, xs] - exact))
        errors["device"].append(np.abs(device[i].numpy()[ys, xs] - exact))
    assert errors["cpu"], "no differing pixel in 60 glyphs: the test would prove nothing"
    cpu_error, device_error = (np.concatenate(errors[k]).mean() for k in ("cpu", "device"))
    assert device_error < cpu_error


@pytest.mark.parametrize(
    "strokes",
    [
        [],  # nothing to draw
        [np.array([[10.2, 10.7]])],  # a lone point
        [np.array([[-5.0, 30.0], [70.0, 33.0]]), np.array([[30.0, -4.0], [32.0, 80.0]])],  # off the canvas, crossing
        [np.array([[20 + 10 * np.cos(t), 30 + 10 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 40)])],  # closed
        [np.array([[5.0, 5.0], [60.0, 5.0]]), np.array([[5.0, 6.5], [60.0, 6.5]])],  # parallel, 1.5 px apart
    ],
    ids=["empty", "point", "off-canvas-crossing", "closed-loop", "parallel"],
)
def test_hand_made_glyphs_match(strokes):
    half_widths = np.full(len(strokes), 1.1, np.float32)
    cpu = Renderer(SIZE)(strokes, half_widths)
    item = {k: torch.from_numpy(v) for k, v in Centerlines(SIZE)(strokes, half_widths).items()}
    other = dict(item, visible=torch.ones(1, SIZE, SIZE))
    short = {k: torch.from_numpy(v) for k, v in Centerlines(SIZE)([np.array([[1.0, 1.0]])], [1.0]).items()}
    device = render_on_device([other, dict(short, visible=torch.ones(1, SIZE, SIZE))])  # padded against another
    for key, value in cpu.items():
        assert np.abs(device[key][0].numpy() - value).max() <= 1e-4, key


def test_the_renderer_never_reads_the_device():
    """On the meta device (shapes, no data) anything data-dependent raises: boolean indexing,
    nonzero, .item(), a Python branch on a tensor. The renderer runs there, so it has no sync."""
    source = SyntheticStrokes(max_strokes=6)
    _, device_set = datasets(source)
    batch = collate_centerlines([device_set[0, i] for i in range(4)])
    out = DeviceRenderer(SIZE)({k: v.to("meta") for k, v in batch.items()})
    assert out["offset"].shape == (4, 2, SIZE, SIZE) and out["image"].shape == (4, 2, SIZE, SIZE)
    with pytest.raises((NotImplementedError, RuntimeError)):
        batch["points"].to("meta").nonzero()  # the check itself can fail


def test_collate_pads_glyphs_of_different_sizes():
    c = Centerlines(SIZE)
    a = c([np.array([[1.0, 1.0], [9.0, 1.0]])], [1.0])
    b = c([np.array([[1.0, 1.0], [1.0, 3.0]]), np.array([[5.0, 5.0], [5.0, 6.0]])], [1.0, 0.8])
    batch = collate_centerlines([{k: torch.from_numpy(v) for k, v in x.items()} for x in (a, b)])
    assert batch["points"].shape == (2, max(len(a["points"]), len(b["points"])), 2)
    assert batch["stroke"][1, len(b["points"]) :].eq(-1).all() and batch["stroke_count"][0, 1] == 0
    half_width = batch["half_width"][1, : len(b["points"])]  # per sample: each stroke's pen
    assert half_width.tolist() == pytest.approx([1.0] * b["stroke_count"][0] + [0.8] * b["stroke_count"][1])
    assert batch["half_width"][0, len(a["points"]) :].eq(0).all()


@pytest.mark.slow
def test_a_run_with_the_device_renderer_resumes_exactly(workdir):
    """Samples stay keyed by (seed, epoch, index): kill, resume, and the losses and weights equal
    the uninterrupted run's bit for bit."""
    args = RUN + ["data.renderer=device"]
    assert run_cli(args + ["hydra.run.dir=full"], cwd=workdir).returncode == 0
    kill_at_step(args, workdir, Path("cut"), min_step=4)
    assert 0 < latest_step(workdir / "cut")[0] < 12, "the run was not interrupted"
    proc = run_cli(["+resume=cut"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(workdir / "full", workdir / "cut")


@pytest.mark.slow
def test_a_device_run_trains_like_a_cpu_run(workdir):
    """The same tiny run with either renderer: first-step losses agree to the renderers'
    tolerance (the same samples, drawn by two implementations)."""
    for renderer in ("cpu", "device"):
        args = RUN + ["training.epochs=1", f"data.renderer={renderer}", f"hydra.run.dir={renderer}"]
        assert run_cli(args, cwd=workdir).returncode == 0
    cpu, device = losses(workdir / "cpu"), losses(workdir / "device")
    assert cpu[1] == pytest.approx(device[1], rel=1e-3)

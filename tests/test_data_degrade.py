"""``data.degrade``: scan-like input, clean targets, the same on both renderers, fixed by the key."""

from __future__ import annotations

import numpy as np
import torch

from helpers import run_cli, tiny
from inktrace_train.config.schema import DataConfig
from inktrace_train.data import InkDataset, Renderer, SyntheticStrokes
from inktrace_train.data import degrade as scan
from inktrace_train.data.device_batch import Centerlines, collate_centerlines
from inktrace_train.data.device_render import DeviceRenderer
from inktrace_train.train.build import make_augmenter

SIZE = 64


def dataset(degrade: float, render=None) -> InkDataset:
    return InkDataset(
        SyntheticStrokes(4),
        make_augmenter(DataConfig()),
        render or Renderer(SIZE),
        seed=5,
        stream=0,
        mask_ratio=0.25,
        patch_size=8,
        fixed=False,
        degrade=degrade,
    )


def batch(fields):
    return {k: torch.from_numpy(v)[None] for k, v in fields.items()}


def test_identity_fields_leave_the_ink_as_it_is():
    ink = torch.from_numpy(dataset(0.0).sample(0, 1)["ink"])[None]
    assert torch.equal(scan.apply(ink, batch(scan.identity(SIZE))), ink)


def test_degraded_inputs_keep_the_clean_targets_and_are_fixed_by_the_key():
    clean, damaged = dataset(0.0), dataset(1.0)
    for i in range(8):
        a, b = clean.sample(2, i), damaged.sample(2, i)
        for key in ("ink", "skeleton", "keypoints", "tangent", "width", "offset", "visible"):
            assert np.array_equal(a[key], b[key]), key
        assert np.array_equal(a["image"][0], a["ink"][0] * a["visible"][0])
        diff = np.abs(b["image"][0] - a["image"][0])[a["visible"][0] > 0]
        assert diff.mean() > 0.01  # visibly damaged
        assert b["image"].min() >= 0 and b["image"].max() <= 1
        assert np.array_equal(b["image"], damaged.sample(2, i)["image"])  # same key, same damage
    assert not np.array_equal(damaged.sample(2, 0)["image"], damaged.sample(3, 0)["image"])


def test_the_share_of_degraded_inputs_follows_data_degrade():
    half = dataset(0.5)
    damaged = sum(
        not np.array_equal(s["image"][0], s["ink"][0] * s["visible"][0])
        for s in map(lambda i: half.sample(0, i), range(60))
    )
    assert 18 <= damaged <= 42


def test_every_kind_of_damage_appears():
    rng = np.random.default_rng(0)
    drawn = [scan.draw(rng, SIZE) for _ in range(40)]
    assert any(f["degrade_gap"].max() > 0.5 for f in drawn) and any(f["degrade_gap"].max() == 0 for f in drawn)
    assert any(f["degrade_speck"].max() > 0.3 for f in drawn)
    assert all(
        f["degrade_gain"].max() <= 1 and f["degrade_gain"].min() >= 0.45 * (1 - scan.UNEVEN) - 1e-6 for f in drawn
    )
    assert max(f["degrade_paper"].max() for f in drawn) > 0.1 and max(float(f["degrade_blur"][0]) for f in drawn) > 0.5


def test_blur_keeps_the_ink_and_spreads_it():
    ink = torch.zeros(1, 1, 16, 16)
    ink[0, 0, 8, 8] = 1.0
    out = scan._blur(ink, torch.tensor([1.0]))
    assert abs(float(out.sum()) - 1.0) < 1e-5 and 0.1 < float(out[0, 0, 8, 8]) < 0.2


def test_the_device_renderer_degrades_alike():
    cpu, worker = dataset(1.0), dataset(1.0, Centerlines(SIZE))
    items = [worker[0, i] for i in range(12)]
    device = DeviceRenderer(SIZE)(collate_centerlines(items))
    expected = torch.stack([cpu[0, i]["image"] for i in range(12)])
    assert (device["image"] - expected).abs().mean() < 1e-4  # the inks agree to ~1e-5 (test_device_render)


def test_out_of_range_degrade_is_named(workdir):
    proc = run_cli(tiny("data.degrade=1.5"), cwd=workdir)
    assert proc.returncode != 0 and "data.degrade=1.5" in proc.stderr and "[0, 1]" in proc.stderr


def test_a_degraded_run_trains(workdir):
    proc = run_cli(tiny("data.degrade=0.5"), cwd=workdir)
    assert proc.returncode == 0, proc.stderr

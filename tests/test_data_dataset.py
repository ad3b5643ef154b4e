"""InkDataset / EpochSampler: determinism, masking and DataLoader independence."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from inktrace_train.config.schema import DataConfig
from inktrace_train.data import (
    TARGET_CHANNELS,
    EpochSampler,
    InkDataset,
    KanjiVGStrokes,
    Renderer,
    SyntheticStrokes,
    worker_init_fn,
)
from inktrace_train.data.kanjivg import kanji_dir
from inktrace_train.train.build import make_augmenter

SIZE, PATCH = 64, 8


def make_dataset(source, mask_ratio=0.25, fixed=False, seed=0, stream=0):
    augment = make_augmenter(replace(DataConfig(), img_size=SIZE))
    return InkDataset(
        source, augment, Renderer(SIZE), seed=seed, stream=stream, mask_ratio=mask_ratio, patch_size=PATCH, fixed=fixed
    )


@pytest.fixture(scope="module")
def kanjivg_source(tmp_path_factory):
    src = tmp_path_factory.mktemp("svgs")
    for path in sorted(kanji_dir().glob("0[4-9]*.svg"))[::211][:30]:
        shutil.copy(path, src)
    return KanjiVGStrokes("train", 1e-9, 0.0, str(tmp_path_factory.mktemp("cache")), source_dir=str(src))


@pytest.fixture(params=["synthetic", "kanjivg"])
def source(request, kanjivg_source):
    return SyntheticStrokes(max_strokes=6) if request.param == "synthetic" else kanjivg_source


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_sample_keys_shapes(source):
    s = make_dataset(source)[(0, 0)]
    assert set(s) == {"image", "visible", *TARGET_CHANNELS}
    assert s["image"].shape == (2, SIZE, SIZE) and s["visible"].shape == (1, SIZE, SIZE)
    for key, c in TARGET_CHANNELS.items():
        assert s[key].shape == (c, SIZE, SIZE) and s[key].dtype == torch.float32


def test_same_key_same_sample_other_epoch_differs(source):
    ds = make_dataset(source)
    assert same(ds[(3, 5)], make_dataset(source)[(3, 5)])
    assert not torch.equal(ds[(3, 5)]["ink"], ds[(4, 5)]["ink"])
    assert not torch.equal(ds[(3, 5)]["ink"], ds[(3, 6)]["ink"])
    assert not torch.equal(ds[(3, 5)]["ink"], make_dataset(source, stream=1)[(3, 5)]["ink"])


def test_fixed_ignores_epoch(kanjivg_source):
    ds = make_dataset(kanjivg_source, fixed=True)
    assert same(ds[(0, 7)], ds[(9, 7)])
    # Fixed samples walk the source in order: index and index + len show the same glyph.
    a, b = ds.sample(0, 2), ds.sample(0, 2 + len(kanjivg_source))
    assert a["skeleton"].sum() > 0 and not np.array_equal(a["ink"], b["ink"])  # other augmentation


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.9])
def test_mask_hides_exact_patch_count(ratio):
    ds = make_dataset(SyntheticStrokes(4), mask_ratio=ratio)
    n = (SIZE // PATCH) ** 2
    for index in range(3):
        s = ds[(0, index)]
        vis = s["visible"][0].reshape(SIZE // PATCH, PATCH, SIZE // PATCH, PATCH)
        per_patch = vis.sum(dim=(1, 3))
        assert set(per_patch.unique().tolist()) <= {0.0, PATCH * PATCH}  # whole patches only
        assert int((per_patch == 0).sum()) == round(ratio * n)
        torch.testing.assert_close(s["image"][0], s["ink"][0] * s["visible"][0])
        torch.testing.assert_close(s["image"][1], s["visible"][0])


def test_targets_ignore_the_mask():
    unmasked = make_dataset(SyntheticStrokes(4), mask_ratio=0.0)[(1, 2)]
    masked = make_dataset(SyntheticStrokes(4), mask_ratio=0.75)[(1, 2)]
    for key in TARGET_CHANNELS:
        assert torch.equal(unmasked[key], masked[key])


def test_epoch_sampler_resume():
    assert list(EpochSampler(5, epoch=2, batch_size=1, drop_last=True)) == [(2, i) for i in range(5)]
    resumed = EpochSampler(10, epoch=1, batch_size=2, drop_last=True, start_batch=3)
    assert len(resumed) == 4 and list(resumed) == [(1, 6), (1, 7), (1, 8), (1, 9)]


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("drop_last", [True, False])
def test_epoch_sampler_global_batches_do_not_depend_on_the_number_of_ranks(world, drop_last):
    """Per global batch of 8, the ranks' shares put together are the same 8 samples in order."""
    shares = [
        list(EpochSampler(30, 0, batch_size=8, drop_last=drop_last, rank=r, world_size=world, start_batch=1))
        for r in range(world)
    ]
    per_rank = 8 // world
    rebuilt = [
        key
        for b in range(len(shares[0]) // per_rank + 1)
        for s in shares
        for key in s[b * per_rank : (b + 1) * per_rank]
    ]
    expected = [(0, i) for i in range(8, 24 if drop_last else 30)]  # batch 0 skipped (start_batch=1)
    assert rebuilt == expected
    assert sum(len(s) for s in shares) == len(expected)


def batches(ds, workers, start=0):
    loader = DataLoader(
        ds,
        batch_size=4,
        sampler=EpochSampler(12, epoch=1, batch_size=4, drop_last=True, start_batch=start // 4),
        num_workers=workers,
        worker_init_fn=worker_init_fn if workers else None,
    )
    return list(loader)


def test_dataloader_workers_do_not_change_batches(kanjivg_source):
    ds = make_dataset(kanjivg_source)
    serial, parallel = batches(ds, 0), batches(ds, 2)
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel, strict=False):
        assert same(a, b)
    # Resuming mid-epoch yields exactly the remaining batches.
    for a, b in zip(serial[1:], batches(ds, 0, start=4), strict=False):
        assert same(a, b)


def test_sampler_length_matches_iteration_and_is_instant_for_huge_epochs():
    import itertools

    for n, b, drop, rank, world, start in itertools.product(
        [0, 1, 7, 16, 33], [1, 3, 8], [True, False], [0, 2], [1, 3], [0, 2, 50]
    ):
        if rank < world:
            sampler = EpochSampler(n, 0, b, drop, rank, world, start)
            assert len(sampler) == len(list(sampler)), (n, b, drop, rank, world, start)
    assert len(EpochSampler(99_999_999_999, 0, 32, drop_last=True)) == 99_999_999_968  # a loop over batches hung

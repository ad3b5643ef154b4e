"""Metrics on hand-made maps: matching, peaks, F1 conventions, accumulation."""

from __future__ import annotations

import math

import pytest
import torch

from inktrace_train.evaluation.metrics import ValidationMetrics, match_counts, peaks, select_metric


def counts(pred, target, tol):
    return tuple(int(x) for x in match_counts(pred, target, tol))


def blank(size: int = 16, batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, size, size, dtype=torch.bool)


def gaussian(size: int, centres, sigma: float = 1.0) -> torch.Tensor:
    """(size, size) max of unit-peak Gaussians at integer (y, x) centres."""
    ys, xs = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    heat = torch.zeros(size, size)
    for cy, cx in centres:
        heat = torch.maximum(heat, torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)))
    return heat


def logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def test_identical_maps_match_fully():
    target = blank()
    target[0, 5, 2:12] = True
    target[0, 2:10, 7] = True
    n = int(target.sum())
    assert counts(target, target, 0) == (n, n, n)
    assert counts(target, target, 1) == (n, n, n)


def test_shift_by_one_pixel():
    target = blank()
    target[0, 6, 3:13] = True
    pred = torch.roll(target, 1, dims=1)  # one row down
    assert counts(pred, target, 0) == (0, 10, 10)
    assert counts(pred, target, 1) == (10, 10, 10)


def test_matching_is_one_to_one():
    target = blank()
    target[0, 8, 8] = True
    pred = blank()
    pred[0, 8, 7] = pred[0, 8, 9] = True
    assert counts(pred, target, 1) == (1, 2, 1)
    assert counts(target, pred, 1) == (1, 1, 2)


def test_nearest_offset_wins():
    # The target at (4,4) has an exact pred and a diagonal one; the exact one is used,
    # leaving the diagonal pred for the target at (5,5).
    target = blank()
    target[0, 4, 4] = target[0, 5, 5] = True
    pred = blank()
    pred[0, 4, 4] = pred[0, 5, 6] = True
    assert counts(pred, target, 1) == (2, 2, 2)


def test_no_match_across_border_or_batch():
    target = blank(batch=2)
    target[0, 0, 0] = True
    pred = blank(batch=2)
    pred[1, 0, 0] = True  # other image
    pred[0, 15, 15] = True  # opposite corner: no wrap-around
    assert counts(pred, target, 2) == (0, 2, 1)


def test_peaks_on_gaussians():
    heat = gaussian(24, [(5, 5), (5, 12), (18, 20)])[None]
    found = peaks(heat, 0.5)
    assert found[0].nonzero().tolist() == [[5, 5], [5, 12], [18, 20]]
    assert not peaks(heat * 0.4, 0.5).any()  # below threshold
    assert not peaks(torch.zeros(1, 8, 8), 0.3).any()


def structural_batch(target_sk: torch.Tensor, pred_sk: torch.Tensor):
    """Outputs (confident logits) and batch for skeleton maps (B, H, W) bool."""
    outputs = {"skeleton": (pred_sk.float()[:, None] * 2 - 1) * 10}
    return outputs, {"skeleton": target_sk.float()[:, None]}


def test_validation_metrics_perfect_and_empty():
    target = blank(batch=2)
    target[0, 4, 2:10] = True
    target[1, 2:12, 9] = True
    m = ValidationMetrics()
    m.update(*structural_batch(target, target))
    assert m.compute() == {"skeleton_f1_0px": 1.0, "skeleton_f1_1px": 1.0}
    m.reset()
    m.update(*structural_batch(target, blank(batch=2)))
    assert m.compute() == {"skeleton_f1_0px": 0.0, "skeleton_f1_1px": 0.0}
    m.reset()
    m.update(*structural_batch(blank(batch=2), blank(batch=2)))  # both empty
    assert m.compute()["skeleton_f1_1px"] == 1.0


def test_validation_metrics_shifted_skeleton():
    target = blank()
    target[0, 6, 2:14] = True
    target[0, 9, 4:10] = True
    target[0, 3, 3] = True
    m = ValidationMetrics()
    m.update(*structural_batch(target, torch.roll(target, 1, dims=1)))  # one row down
    f1 = m.compute()
    assert f1["skeleton_f1_0px"] == 0.0
    assert f1["skeleton_f1_1px"] == 1.0


def test_greedy_matching_along_a_line():
    """Documented approximation: shifted along itself, a line keeps its 11 exact
    matches, leaving the two end pixels 12 px apart; optimal matching would pair all 12
    at 1 px."""
    target = blank()
    target[0, 6, 2:14] = True
    pred = torch.roll(target, 1, dims=2)
    assert counts(pred, target, 1) == (11, 12, 12)


def keypoint_batch():
    """Targets with 2 endpoints and 1 junction; predictions find both endpoints
    (one 2 px off) plus a spurious one, and miss the junction."""
    size = 24
    sk = blank(size)
    sk[0, 5, 5:20] = True
    target_heat = torch.stack([gaussian(size, [(5, 5), (5, 19)]), gaussian(size, [(5, 12)])])[None]
    pred_heat = torch.stack([gaussian(size, [(5, 5), (7, 19), (18, 3)]), torch.zeros(size, size)])[None]
    outputs = {"skeleton": (sk.float()[:, None] * 2 - 1) * 10, "keypoints": logit(pred_heat)}
    batch = {"skeleton": sk.float()[:, None], "keypoints": target_heat}
    return outputs, batch


def test_keypoint_f1():
    m = ValidationMetrics()
    m.update(*keypoint_batch())
    f1 = m.compute()
    assert set(f1) == {"skeleton_f1_0px", "skeleton_f1_1px", "endpoint_f1", "junction_f1"}
    assert f1["endpoint_f1"] == pytest.approx(2 * 2 / (3 + 2))
    assert f1["junction_f1"] == 0.0


def test_two_updates_equal_one_combined():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 20, 20, generator=g) > 0.8
    pred = torch.rand(4, 20, 20, generator=g) > 0.8
    split = ValidationMetrics()
    split.update(*structural_batch(target[:2], pred[:2]))
    split.update(*structural_batch(target[2:], pred[2:]))
    whole = ValidationMetrics()
    whole.update(*structural_batch(target, pred))
    assert split.compute() == whole.compute()
    outputs, batch = keypoint_batch()
    split, whole = ValidationMetrics(), ValidationMetrics()
    split.update(outputs, batch)
    split.update(outputs, batch)
    whole.update({k: torch.cat([v, v]) for k, v in outputs.items()}, {k: torch.cat([v, v]) for k, v in batch.items()})
    assert split.compute() == whole.compute()


def test_select_metric():
    metrics = {"skeleton_f1_0px": 0.5, "skeleton_f1_1px": 0.9, "endpoint_f1": 0.6, "junction_f1": 0.3}
    assert select_metric("structural", metrics) == 0.9
    assert math.isclose(select_metric("dense", metrics), 0.6)
    with pytest.raises(ValueError):
        select_metric("other", metrics)

"""StructureLoss: keys, weighting, masking, fp32, no host sync constructs."""

from __future__ import annotations

import ast
import inspect
from dataclasses import asdict, fields

import pytest
import torch

from inktrace_train.config.schema import LossWeights
from inktrace_train.model import losses as losses_module
from inktrace_train.model.losses import StructureLoss, masked_mean, soft_dice_loss

SHAPES = {"skeleton": 1, "tangent": 2, "ink": 1, "keypoints": 2, "width": 1, "offset": 2}


def random_pair(batch: int = 2, size: int = 16, seed: int = 0):
    """(outputs, batch) with random logits/values and well-formed targets."""
    g = torch.Generator().manual_seed(seed)
    outputs = {k: torch.randn(batch, c, size, size, generator=g) for k, c in SHAPES.items()}
    outputs["width"] = outputs["width"].abs()
    ink = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    skeleton = ink * (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    targets = {
        "ink": ink,
        "skeleton": skeleton,
        "keypoints": torch.rand(batch, 2, size, size, generator=g) * skeleton,
        "tangent": torch.randn(batch, 2, size, size, generator=g) * skeleton,
        "width": 2 * torch.rand(batch, 1, size, size, generator=g) * ink,
        "offset": torch.randn(batch, 2, size, size, generator=g) * ink,
    }
    return outputs, targets


def make_loss(full_heads: bool, **weights) -> StructureLoss:
    return StructureLoss(**asdict(LossWeights(**weights)), full_heads=full_heads)


def test_signature_matches_loss_weights():
    params = list(inspect.signature(StructureLoss.__init__).parameters)[1:]
    assert params == [f.name for f in fields(LossWeights)] + ["full_heads"]


@pytest.mark.parametrize("full_heads", [False, True])
def test_keys_and_weighted_total(full_heads):
    outputs, targets = random_pair()
    weights = dict(skeleton=1.5, tangent=0.3, ink=0.7, keypoints=2.0, width=0.1, offset=0.4)
    out = make_loss(full_heads, **weights)(outputs, targets)
    terms = ["skeleton", "tangent", "ink"] + (["keypoints", "width", "offset"] if full_heads else [])
    assert set(out) == set(terms) | {"total"}
    for k, v in out.items():
        assert v.ndim == 0 and v.dtype == torch.float32 and torch.isfinite(v), k
    expected = sum(weights[k] * out[k] for k in terms)
    torch.testing.assert_close(out["total"], expected)


def test_structural_loss_ignores_missing_dense_outputs():
    outputs, targets = random_pair()
    structural = {k: outputs[k] for k in ("skeleton", "tangent", "ink")}
    out = make_loss(False)(structural, targets)  # the dense heads are absent: no KeyError
    full = make_loss(True)(outputs, targets)
    assert set(out) == {"skeleton", "tangent", "ink", "total"}
    for k in ("skeleton", "tangent", "ink"):
        torch.testing.assert_close(out[k], full[k])  # the same terms, whatever else the model has
    assert out["total"] < full["total"]


def test_perfect_regression_terms_are_zero_and_masked():
    outputs, targets = random_pair()
    for k in ("tangent", "width", "offset"):
        outputs[k] = targets[k].clone()
    # Errors outside the masks must not count.
    outputs["tangent"] += 5 * (1 - targets["skeleton"])
    outputs["width"] += 5 * (1 - targets["ink"])
    out = make_loss(True)(outputs, targets)
    for k in ("tangent", "width", "offset"):
        assert out[k].item() == pytest.approx(0.0, abs=1e-7), k


def test_masked_mean_values_and_empty_mask():
    err = torch.arange(8.0).reshape(1, 2, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    # channel 0 picks 0 and 3, channel 1 picks 4 and 7 -> (0+3+4+7) / 4
    assert masked_mean(err, mask).item() == pytest.approx(3.5)
    assert masked_mean(err, torch.zeros_like(mask)).item() == 0.0


def test_empty_targets_give_finite_losses():
    outputs, targets = random_pair()
    targets = {k: torch.zeros_like(v) for k, v in targets.items()}
    out = make_loss(True)(outputs, targets)
    assert all(torch.isfinite(v) for v in out.values())
    assert out["tangent"].item() == out["width"].item() == out["offset"].item() == 0.0


def test_soft_dice_near_zero_for_confident_correct_prediction():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 3, :] = 1
    logits = (target * 2 - 1) * 20
    assert soft_dice_loss(logits, target).item() < 1e-3
    assert soft_dice_loss(-logits, target).item() > 0.9


def test_bf16_outputs_computed_in_fp32_with_gradients():
    outputs, targets = random_pair()
    outputs = {k: v.to(torch.bfloat16).requires_grad_() for k, v in outputs.items()}
    out = make_loss(True)(outputs, targets)
    assert out["total"].dtype == torch.float32
    out["total"].backward()
    for k, v in outputs.items():
        assert v.grad is not None and torch.isfinite(v.grad.float()).all(), k


def test_no_host_sync_constructs_in_source():
    """No call in the module's code reads a tensor back to the host."""
    banned = {"item", "tolist", "cpu", "numpy", "nonzero", "masked_select", "any", "all"}
    tree = ast.parse(inspect.getsource(losses_module))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not used & banned


def test_the_keypoint_loss_rewards_sharp_peaks_and_counts_per_peak():
    from inktrace_train.model.losses import keypoint_loss

    target = torch.zeros(1, 2, 16, 16)
    target[0, 1, 8, 8] = 1.0
    target[0, 1, 7:10, 7:10] = torch.maximum(target[0, 1, 7:10, 7:10], torch.full((3, 3), 0.6))
    target[0, 1, 8, 8] = 1.0
    sharp = torch.full_like(target, -8.0)
    sharp[0, 1, 8, 8] = 8.0
    blurred = torch.where(target > 0, torch.logit(target.clamp(1e-4, 0.9)), torch.full_like(target, -8.0))
    assert keypoint_loss(sharp, target) < 0.01 < keypoint_loss(blurred, target)
    missed = torch.full_like(target, -8.0)
    assert keypoint_loss(missed, target) > 5.0  # a missed peak costs ~8 (its -log p)
    two = torch.cat([target, target])  # twice the peaks, twice the sum: the same per-peak loss
    assert torch.isclose(keypoint_loss(torch.cat([missed, missed]), two), keypoint_loss(missed, target))
    assert keypoint_loss(torch.zeros_like(target) - 8.0, torch.zeros_like(target)) < 1e-3  # no peaks: no blow-up

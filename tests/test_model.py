"""InkTraceModel: shapes, size, head switching, masking, optimizer groups, trainability."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from inktrace_train.config.schema import LossWeights, ModelConfig
from inktrace_train.model.losses import StructureLoss
from inktrace_train.model.network import InkTraceModel, parameter_groups

TINY = dict(embed_dim=32, num_layers=1, num_heads=2, stem_channels=[8, 16, 32], decoder_channels=[32, 16, 8])
STRUCTURAL = {"skeleton": 1, "tangent": 2, "ink": 1}
DENSE = {"keypoints": 2, "width": 1, "offset": 2}


def make_model(full_heads: bool = False, tiny: bool = False, seed: int = 0) -> InkTraceModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(full_heads=full_heads, **(TINY if tiny else {}))
    return InkTraceModel(**asdict(cfg))


def make_image(batch: int, size: int, hidden_patches=(), seed: int = 0) -> torch.Tensor:
    """[ink * visible, visible] with the given (row, col) 8x8 patches hidden."""
    g = torch.Generator().manual_seed(seed)
    ink = torch.rand(batch, 1, size, size, generator=g)
    visible = torch.ones(batch, 1, size, size)
    for r, c in hidden_patches:
        visible[:, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 0
    return torch.cat([ink * visible, visible], dim=1)


def make_batch(batch: int, size: int, seed: int = 0) -> dict:
    """Random but well-formed targets for every head."""
    g = torch.Generator().manual_seed(seed)
    ink = (torch.rand(batch, 1, size, size, generator=g) > 0.7).float()
    skeleton = ink * (torch.rand(batch, 1, size, size, generator=g) > 0.6).float()
    angle = torch.rand(batch, 1, size, size, generator=g) * torch.pi
    return {
        "image": torch.cat([ink, torch.ones_like(ink)], dim=1),
        "visible": torch.ones_like(ink),
        "ink": ink,
        "skeleton": skeleton,
        "keypoints": torch.rand(batch, 2, size, size, generator=g) * skeleton,
        "tangent": torch.cat([torch.cos(2 * angle), torch.sin(2 * angle)], 1) * skeleton,
        "width": 2 * torch.rand(batch, 1, size, size, generator=g) * ink,
        "offset": (torch.rand(batch, 2, size, size, generator=g) - 0.5) * ink,
    }


@pytest.mark.parametrize("tiny", [False, True])
@pytest.mark.parametrize("full_heads", [False, True])
@pytest.mark.parametrize("size", [64, 128])
def test_output_shapes(tiny, full_heads, size):
    model = make_model(full_heads, tiny)
    with torch.no_grad():
        out = model(make_image(2, size, hidden_patches=[(0, 0)]))
    expected = dict(STRUCTURAL, **(DENSE if full_heads else {}))
    assert set(out) == set(expected)
    for name, channels in expected.items():
        assert out[name].shape == (2, channels, size, size), name
        assert torch.isfinite(out[name]).all(), name
    if full_heads:
        assert (out["width"] >= 0).all()


@pytest.mark.parametrize(
    "full_heads,tiny,expected",
    [
        (False, False, 1_049_908),  # the default model: about 1.05 M
        (True, False, 1_056_953),  # the dense heads add 7,045
        (False, True, 67_068),  # conf/model/tiny.yaml
    ],
)
def test_parameter_counts(full_heads, tiny, expected):
    assert sum(p.numel() for p in make_model(full_heads, tiny).parameters()) == expected


def test_full_heads_only_adds_head_parameters():
    small = {n: p.shape for n, p in make_model(False).named_parameters()}
    full = {n: p.shape for n, p in make_model(True).named_parameters()}
    assert set(small) <= set(full)
    assert all(full[n] == shape for n, shape in small.items())
    new = set(full) - set(small)
    assert new and all(n.split(".")[:2] in (["heads", h] for h in DENSE) for n in new)
    assert {n.split(".")[0] for n in full} == {"stem", "encoder", "decoder", "heads"}


def test_hidden_ink_does_not_change_output():
    model = make_model(tiny=True).eval()
    image = make_image(2, 64, hidden_patches=[(2, 3), (5, 5)])
    leaked = image.clone()
    # Raw ink under the hidden patch: the model must zero it itself.
    leaked[:, 0, 16:24, 24:32] = torch.rand(2, 8, 8)
    with torch.no_grad():
        a, b = model(image), model(leaked)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_mask_token_is_used_only_for_hidden_patches():
    model = make_model(tiny=True).eval()
    masked = make_image(1, 64, hidden_patches=[(1, 1)])
    unmasked = make_image(1, 64)
    with torch.no_grad():
        before = (model(masked)["skeleton"], model(unmasked)["skeleton"])
        # Not a constant shift: every LayerNorm would remove it.
        model.encoder.mask_token.add_(torch.randn(model.encoder.mask_token.shape))
        after = (model(masked)["skeleton"], model(unmasked)["skeleton"])
    assert not torch.allclose(before[0], after[0])
    torch.testing.assert_close(before[1], after[1], rtol=0, atol=0)


def test_token_mask_from_visible():
    model = make_model(tiny=True)
    visible = make_image(1, 64, hidden_patches=[(0, 7), (3, 2)])[:, 1:2]
    visible[:, :, 40:43, 40:48] = 0  # a few hidden pixels do not hide a patch
    hidden = model.token_mask(visible)[0, 0]
    assert hidden.shape == (8, 8)
    assert hidden.nonzero().tolist() == [[0, 7], [3, 2]]


def test_parameter_groups_cover_every_parameter_once():
    model = make_model(full_heads=True)
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    no_decay_ids = {id(p) for p in no_decay["params"]}
    for name, p in model.named_parameters():
        expect_no_decay = name.endswith(("bias", "mask_token")) or "norm" in name or p.ndim == 1
        assert (id(p) in no_decay_ids) == expect_no_decay, name
    assert id(model.encoder.mask_token) in no_decay_ids
    torch.optim.AdamW(parameter_groups(model, 0.05), lr=1e-3)  # accepted as-is


def test_loss_backward_gives_finite_gradients():
    model = make_model(full_heads=True, tiny=True)
    batch = make_batch(2, 64)
    loss = StructureLoss(**asdict(LossWeights()), full_heads=True)
    loss(model(batch["image"]), batch)["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.encoder.mask_token.grad.abs().sum() == 0  # nothing was hidden


def test_autocast_bf16_forward_backward():
    model = make_model(full_heads=True, tiny=True)
    batch = make_batch(2, 64)
    loss = StructureLoss(**asdict(LossWeights()), full_heads=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = loss(model(batch["image"]), batch)
    assert losses["total"].dtype == torch.float32
    losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_compiles_without_graph_breaks():
    model = make_model(full_heads=True, tiny=True)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    image = make_image(2, 64, hidden_patches=[(1, 2)])
    out = compiled(image)
    ref = model(image)
    for name in ref:
        torch.testing.assert_close(out[name], ref[name])


def test_overfits_one_small_batch():
    model = make_model(full_heads=True, tiny=True)
    batch = make_batch(4, 32, seed=1)
    loss_fn = StructureLoss(**asdict(LossWeights()), full_heads=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(80):  # the focal keypoint term starts near zero, so the total falls slower than under BCE
        total = loss_fn(model(batch["image"]), batch)["total"]
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    assert history[-1] < 0.5 * history[0], history


def test_channels_last_computes_the_same_and_its_weights_are_interchangeable():
    """training.channels_last: NHWC convolutions give the same outputs (to float rounding), and
    a state dict of an NHWC model loads into an NCHW one and back."""
    eager = make_model(full_heads=True)
    nhwc = make_model(full_heads=True).to(memory_format=torch.channels_last)
    image = make_image(4, 64, hidden_patches=[(1, 2)])
    with torch.no_grad():
        a, b = eager(image), nhwc(image.contiguous(memory_format=torch.channels_last))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    back = make_model(full_heads=True, seed=1)
    back.load_state_dict(nhwc.state_dict())
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in eager.state_dict().items())

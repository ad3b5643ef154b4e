"""InkTraceModel: conv stem -> masked transformer on a token grid -> U-Net decoder -> heads.

Data flow for a 64x64 input at the defaults (``stem_channels=(16, 32, 64)``)::

    image (B,2,64,64) = [ink * visible, visible]
      stem.0  -> (B,16,32,32)  ----------------------------- skip --+
      stem.1  -> (B,32,16,16)  -------------------- skip --+        |
      stem.2  -> (B,64, 8, 8)                              |        |
      encoder -> (B,128,8,8)  one token per 8x8 patch      |        |
      decoder.0 up x2, cat ------------------------------- +        |
      decoder.1 up x2, cat -------------------------------------- --+
      decoder.2 up x2, cat input image (full resolution)
      heads   -> dict of (B,C,64,64)

Top-level module names (``stem``, ``encoder``, ``decoder``, ``heads``) are stable on
purpose: a weight-transfer report groups parameters by them, and switching
``full_heads`` from False to True only adds ``heads.keypoints.*``, ``heads.width.*``
and ``heads.offset.*``; every backbone name and shape is unchanged.

The forward pass has no data-dependent Python control flow (the hidden-token mask is
applied with ``torch.where``), so it traces under ``torch.compile(fullgraph=True)`` and
runs under ``torch.autocast`` (bf16/fp16); the outputs then come back in the autocast
dtype and the losses cast them to fp32.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

STRUCTURAL_HEADS = {"skeleton": 1, "tangent": 2, "ink": 1}  # name -> output channels
DENSE_HEADS = {"keypoints": 2, "width": 1, "offset": 2}  # added when full_heads=True

# Initial output bias of the logit heads, log(p / (1 - p)) for the expected share of
# positive pixels, so training does not start by spending steps on "everything is 0.5".
_PRIOR_PROBABILITY = {"skeleton": 0.05, "ink": 0.15, "keypoints": 0.01}


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with groups of 8 channels where possible.

    GroupNorm rather than BatchNorm: its statistics do not depend on the batch, so the
    same image gives the same output in training and evaluation, at any batch size and
    with any share of hidden patches in the rest of the batch.
    """
    groups = channels // 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels)


def _conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """conv3x3 (stride) + norm + GELU + conv3x3 + norm + GELU; convs have no bias (the norm has one)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        _norm(out_channels),
        nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        _norm(out_channels),
        nn.GELU(),
    )


def sincos_position_embedding(height: int, width: int, dim: int, device=None) -> torch.Tensor:
    """Fixed 2-D sin-cos positions, (height * width, dim) float32, row-major like the tokens.

    A quarter of the channels each holds sin(y), cos(y), sin(x), cos(x) at geometric
    frequencies (as in MAE). ``dim`` need not be a multiple of 4: the table is built for
    the next multiple and cut. It is recomputed in every forward pass instead of being
    cached: for an 8x8 grid that is ~10 small ops (microseconds), it follows whatever
    grid size the input has, and ``torch.compile`` constant-folds it for a fixed shape.
    """
    quarter = (dim + 3) // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    ay = gy.reshape(-1, 1) * omega  # (h*w, quarter)
    ax = gx.reshape(-1, 1) * omega
    table = torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)
    return table[:, :dim]


class TokenEncoder(nn.Module):
    """Projects the coarsest stem map to tokens, swaps in the mask token, runs the transformer.

    Args:
        in_channels: channels of the coarsest stem map.
        embed_dim, num_layers, num_heads, mlp_ratio, dropout: as in ModelConfig.
    """

    def __init__(
        self, in_channels: int, embed_dim: int, num_layers: int, num_heads: int, mlp_ratio: float, dropout: float
    ):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, 1)
        # Stands in for every token whose 8x8 patch is hidden (SimMIM-style): the model
        # must infer the hidden ink from context instead of seeing a blank patch.
        self.mask_token = nn.Parameter(torch.zeros(embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                embed_dim,
                num_heads,
                dim_feedforward=round(mlp_ratio * embed_dim),
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, features: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: (B, C, h, w) coarsest stem map.
            hidden: (B, 1, h, w) bool, True where the token's patch is hidden.
        Returns:
            (B, embed_dim, h, w) token grid after the final norm.
        """
        x = self.proj(features)
        b, e, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, h*w, E)
        hidden = hidden.reshape(b, h * w, 1)
        tokens = torch.where(hidden, self.mask_token.to(tokens.dtype), tokens)
        tokens = tokens + sincos_position_embedding(h, w, e, tokens.device).to(tokens.dtype)
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(b, e, h, w)


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip map, then a conv block.

    Bilinear + 3x3 conv rather than a transposed conv: no checkerboard artefacts in
    1-px-wide skeleton maps, for a few extra FLOPs.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.block = _conv_block(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip.to(x.dtype)], dim=1))


def _make_head(name: str, in_channels: int, out_channels: int) -> nn.Sequential:
    """A small 3x3 conv + GELU + 1x1 conv; width ends in softplus (a half-width is >= 0)."""
    layers: List[nn.Module] = [
        nn.Conv2d(in_channels, in_channels, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(in_channels, out_channels, 1),
    ]
    if name in _PRIOR_PROBABILITY:
        p = _PRIOR_PROBABILITY[name]
        nn.init.constant_(layers[-1].bias, math.log(p / (1.0 - p)))
    if name == "width":
        layers.append(nn.Softplus())
    return nn.Sequential(*layers)


class InkTraceModel(nn.Module):
    """Reads a 2-channel masked raster and predicts per-pixel stroke structure.

    Arguments are exactly the fields of ``config.ModelConfig`` (the entry point calls
    ``InkTraceModel(**asdict(cfg.model))``); there are deliberately no defaults here,
    the dataclass is the one source of truth.

    Args:
        embed_dim: token width of the transformer.
        num_layers: pre-norm transformer layers (0 allowed: conv U-Net only).
        num_heads: attention heads, must divide embed_dim.
        mlp_ratio: transformer MLP hidden width / embed_dim.
        dropout: dropout inside the transformer layers.
        stem_channels: one stride-2 conv stage per entry; tokens are 2**len patches.
        decoder_channels: decoder widths, coarse to fine, one per stem stage.
        full_heads: add the dense heads (keypoints, width, offset).
    """

    def __init__(
        self,
        embed_dim: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: float,
        dropout: float,
        stem_channels: Sequence[int],
        decoder_channels: Sequence[int],
        full_heads: bool,
    ):
        super().__init__()
        stem_channels, decoder_channels = list(stem_channels), list(decoder_channels)
        if len(decoder_channels) != len(stem_channels):
            raise ValueError(f"decoder_channels {decoder_channels} needs one width per stem stage {stem_channels}")
        self.patch_size = 2 ** len(stem_channels)
        self.full_heads = bool(full_heads)

        widths = [2] + stem_channels
        self.stem = nn.ModuleList(_conv_block(widths[i], widths[i + 1], stride=2) for i in range(len(stem_channels)))
        self.encoder = TokenEncoder(stem_channels[-1], embed_dim, num_layers, num_heads, mlp_ratio, dropout)
        # Decoder stage i lands on the resolution of stem stage k-2-i; the last one on the
        # input itself, whose skip is the 2-channel image.
        skips = list(reversed(widths[:-1]))  # e.g. [32, 16, 2]
        ins = [embed_dim] + decoder_channels[:-1]
        self.decoder = nn.ModuleList(UpBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels, strict=True))
        head_specs = dict(STRUCTURAL_HEADS, **(DENSE_HEADS if self.full_heads else {}))
        self.heads = nn.ModuleDict({name: _make_head(name, decoder_channels[-1], c) for name, c in head_specs.items()})

    def token_mask(self, visible: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) visibility in {0,1} -> (B,1,H/p,W/p) bool, True where the patch is hidden."""
        return F.avg_pool2d(visible.float(), self.patch_size) < 0.5

    def forward(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            image: (B, 2, H, W) float, channels [ink * visible, visible]; H and W are
                multiples of ``patch_size``.
        Returns:
            dict head name -> (B, C, H, W): ``skeleton``, ``ink`` (and ``keypoints``) are
            logits, ``tangent`` is (cos 2θ, sin 2θ), ``width`` half-width in px (>= 0),
            ``offset`` (dx, dy) in px.
        """
        visible = image[:, 1:2]
        # Re-apply the mask: hidden ink can never leak in, even from a caller that passed
        # raw ink in channel 0. Costs one elementwise multiply.
        x = torch.cat([image[:, 0:1] * visible, visible], dim=1)
        skips = [x]
        for stage in self.stem:
            skips.append(stage(skips[-1]))
        features = self.encoder(skips.pop(), self.token_mask(visible))
        for block in self.decoder:
            features = block(features, skips.pop())
        return {name: head(features) for name, head in self.heads.items()}


def parameter_groups(model: nn.Module, weight_decay: float) -> List[dict]:
    """AdamW parameter groups: decay on weight matrices and conv kernels only.

    No decay on 1-D parameters (norm scales and shifts, biases) and on the mask token:
    shrinking those towards zero only fights the normalisation or the learned token.

    Args:
        model: any module (typically an InkTraceModel).
        weight_decay: decay for the ``decay`` group.
    Returns:
        ``[{"name": "decay", "params": [...], "weight_decay": wd},
        {"name": "no_decay", "params": [...], "weight_decay": 0.0}]``; together they hold
        every parameter of the model exactly once.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.ndim <= 1 or name.endswith("mask_token"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]

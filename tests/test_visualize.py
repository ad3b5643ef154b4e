"""The TensorBoard prediction grid: a labelled row per map, and the traced strokes."""

from __future__ import annotations

import numpy as np
import torch

from inktrace_train.data import Renderer
from inktrace_train.evaluation.visualize import LABEL_WIDTH, SCALE, prediction_grid


def test_rows_are_labelled_and_the_last_shows_traced_strokes():
    t = Renderer(64)(
        [np.array([[8.0, 32.0], [56.0, 32.0]]), np.array([[32.0, 8.0], [32.0, 56.0]])], np.array([1.0, 1.0])
    )
    batch = {k: torch.from_numpy(v)[None].repeat(2, 1, 1, 1) for k, v in t.items()}
    batch["visible"] = torch.ones(2, 1, 64, 64)
    batch["image"] = torch.cat([batch["ink"], batch["visible"]], 1)
    logit = lambda p: torch.logit(p.clamp(1e-4, 1 - 1e-4))  # noqa: E731  (a perfect prediction)
    outputs = {  # every head of a model with the dense heads, as the tracer reads them
        "skeleton": logit(batch["skeleton"]),
        "ink": logit(batch["ink"]),
        "keypoints": logit(batch["keypoints"]),
        "tangent": batch["tangent"],
        "width": batch["width"],
    }
    grid = prediction_grid(batch, outputs)
    tile = 64 * SCALE + 2
    assert grid.shape == (3, 7 * tile, LABEL_WIDTH + 2 * tile)
    assert (grid[:, :, :LABEL_WIDTH] < 0.5).any()  # label text is drawn
    traced = grid[:, 6 * tile :, LABEL_WIDTH:]
    colourful = (traced.max(0).values - traced.min(0).values) > 0.3  # strokes are drawn in colour
    assert colourful.sum() > 100

"""``python -m inktrace_train.predict``: a panel PNG and a valid SVG per image, for a file and a folder."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch

from conftest import run_cli
from inktrace_train.checkpoint.store import Checkpoint, CheckpointManager
from inktrace_train.config.schema import ModelConfig
from inktrace_train.evaluation.predictor import to_canvas
from inktrace_train.model.network import InkTraceModel

TINY = ModelConfig(embed_dim=32, num_layers=1, num_heads=2, stem_channels=[8, 16, 32], decoder_channels=[32, 16, 8])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny full-heads model (untrained: the point is the plumbing) saved as a run would."""
    directory = tmp_path_factory.mktemp("ckpt") / "checkpoints" / "dense"
    cfg = asdict(TINY) | {"full_heads": True}
    torch.manual_seed(0)
    model = InkTraceModel(**cfg)
    config = {"model": cfg, "data": {"img_size": 64}, "stage": {"name": "dense"}}
    CheckpointManager(directory, keep_last_n=1, save_interval=1).save(
        Checkpoint(model_state_dict=model.state_dict(), config=config, epoch=1), is_best=True
    )
    return directory / "checkpoint_best.pth"


def draw(path, size=(120, 90)):
    """Dark ink on white paper, not square: a cross."""
    img = np.full(size, 255, np.uint8)
    cv2.line(img, (10, 45), (110, 45), 0, 5)
    cv2.line(img, (60, 5), (60, 85), 0, 5)
    cv2.imwrite(str(path), img)


def test_a_file_and_a_folder_give_a_panel_and_an_svg(checkpoint, tmp_path):
    draw(tmp_path / "one.png")
    (tmp_path / "many").mkdir()
    draw(tmp_path / "many" / "a.png")
    draw(tmp_path / "many" / "b.jpg", size=(40, 200))
    proc = run_cli(
        [str(checkpoint), str(tmp_path / "one.png"), str(tmp_path / "many"), "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        module="inktrace_train.predict",
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("one", "a", "b"):
        panel = cv2.imread(str(tmp_path / "out" / f"{name}.png"))
        assert panel is not None and panel.shape[0] > 64 * 4 and panel.shape[1] > 64 * 4 * 5
        root = ET.fromstring((tmp_path / "out" / f"{name}.svg").read_text())
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox") == "0 0 64 64"
    assert proc.stdout.count("strokes ->") == 3


def test_the_canvas_rule_keeps_the_aspect_and_inverts_paper(tmp_path):
    draw(tmp_path / "x.png", size=(60, 200))
    canvas = to_canvas(tmp_path / "x.png", 64)
    ys, xs = np.nonzero(canvas > 0.1)
    assert canvas.max() > 0.9 and canvas[0, 0] == 0  # ink is bright, the paper empty
    assert 52 <= xs.max() - xs.min() + 1 <= 56  # the longer side is 85 % of 64
    assert abs((xs.min() + xs.max()) / 2 - 31.5) <= 1 and abs((ys.min() + ys.max()) / 2 - 31.5) <= 1


@pytest.mark.parametrize(
    "args,expected",
    [
        (["missing.pth", "x.png"], "no such file or directory: missing.pth"),
        (["CKPT", "nothere.png"], "no such file or directory: nothere.png"),
        (["CKPT", "notimage.png"], "notimage.png: not a readable image"),
    ],
)
def test_bad_input_is_one_line(checkpoint, tmp_path, args, expected):
    (tmp_path / "notimage.png").write_text("hello")
    draw(tmp_path / "x.png")
    args = [str(checkpoint) if a == "CKPT" else a for a in args]
    proc = run_cli(args + ["--out", "out"], cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode != 0 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

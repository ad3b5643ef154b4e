"""``python -m inktrace_train.ckpt export``: the ONNX file computes the PyTorch model's maps on real
glyphs within 1e-4, with a dynamic batch; ``predict --onnx`` traces with no torch at all."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from helpers import cli, run_cli
from inktrace_train.cli.evaluate import test_glyphs as render_test_glyphs
from inktrace_train.config.schema import DataConfig
from inktrace_train.data.kanjivg import KanjiVGStrokes
from inktrace_train.data.page import blank_page, draw_glyph
from inktrace_train.evaluation.predictor import TorchMaps
from test_predict import checkpoint  # noqa: F401  (the tiny full-heads checkpoint fixture)

onnxruntime = pytest.importorskip("onnxruntime", reason='the onnx extra is not installed (pip install -e ".[onnx]")')
pytest.importorskip("onnx", reason='the onnx extra is not installed (pip install -e ".[onnx]")')


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("export")
    proc = run_cli(
        ["export", str(checkpoint), "--format", "onnx", "--out", "model.onnx"], cwd=out, module="inktrace_train.ckpt"
    )
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime check: largest difference from PyTorch" in proc.stdout
    return out / "model.onnx"


def test_the_onnx_file_matches_pytorch_on_real_glyphs(checkpoint, exported):  # noqa: F811
    glyphs = render_test_glyphs(DataConfig(), "scan", 8)  # test-split glyphs, degraded like scans
    ink = np.stack([image for _, _, image in glyphs])[:, None].astype(np.float32)
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    names = [o.name for o in session.get_outputs()]
    assert names == ["skeleton", "ink", "tangent", "keypoints", "half_width"]
    want = TorchMaps(str(checkpoint))(ink)
    for batch in (ink, ink[:1], ink[:3]):  # the batch dimension is dynamic
        got = dict(zip(names, session.run(None, {"image": batch}), strict=True))
        for name in names:
            assert got[name].shape == want[name][: len(batch)].shape
            assert np.abs(got[name] - want[name][: len(batch)]).max() <= 1e-4, name


def test_predict_with_onnx_needs_no_torch(checkpoint, exported, tmp_path):  # noqa: F811
    d = DataConfig()
    split = KanjiVGStrokes("test", d.val_fraction, d.test_fraction, d.cache_dir)
    page = blank_page(160, 400)
    for i in range(3):
        draw_glyph(page, split.glyph(i), 10 + 130 * i, 20, 110)
    cv2.imwrite(str(tmp_path / "page.png"), page)
    # torch, Hydra and the checkpoint code made unimportable: an application's environment.
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("torch", "hydra", "omegaconf", "tensorboard"):
            sys.modules[name] = None
        from inktrace_train.cli.predict import main
        main(["--onnx", {str(exported)!r}, "page.png", "--out", "onnx_out", "--json"])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "traced 1 of 1 images, 0 failed" in proc.stdout
    by_onnx = json.loads((tmp_path / "onnx_out" / "page.json").read_text())
    args = [str(checkpoint), "page.png", "--out", "ckpt_out", "--json"]
    proc = run_cli(args, cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode == 0, proc.stderr
    by_torch = json.loads((tmp_path / "ckpt_out" / "page.json").read_text())
    assert [g["box"] for g in by_onnx["glyphs"]] == [g["box"] for g in by_torch["glyphs"]]
    assert len(by_onnx["glyphs"]) == 3


def test_export_errors_are_one_line(checkpoint, tmp_path):  # noqa: F811
    proc = cli(["export", "missing.pth", "--out", "m.onnx"], cwd=tmp_path, module="inktrace_train.ckpt")
    assert proc.returncode == 2 and proc.stderr.strip().endswith("no such file or directory: missing.pth")
    args = ["export", str(checkpoint), "--out", "nodir/m.onnx"]
    proc = cli(args, cwd=tmp_path, module="inktrace_train.ckpt")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "no such directory" in proc.stderr
    (tmp_path / "kept.onnx").write_text("a file of the user's")  # not overwritten without --force
    proc = cli(["export", str(checkpoint), "--out", "kept.onnx"], cwd=tmp_path, module="inktrace_train.ckpt")
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "kept.onnx exists: refusing to overwrite it (use --force)"
    )
    assert (tmp_path / "kept.onnx").read_text() == "a file of the user's"
    (tmp_path / "bad.onnx").write_text("not a model")
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((8, 8), np.uint8))
    proc = cli(["--onnx", "bad.onnx", "x.png", "--out", "o"], cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "bad.onnx" in proc.stderr

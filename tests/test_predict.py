"""``python -m inktrace_train.predict``: an SVG in image coordinates per image (and a panel for one glyph),
--json and --overlay, folders that go on past bad files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zlib
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch

from helpers import cli, run_cli
from inktrace_train.checkpoint.store import Checkpoint, CheckpointManager
from inktrace_train.config.schema import ModelConfig
from inktrace_train.evaluation.imaging import place, read_ink
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


def png_claiming(path, width, height):
    """A PNG whose (valid) header claims width x height pixels and whose data holds 8 x 8."""
    cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC
    path.write_bytes(bytes(data))


def test_a_file_and_a_folder_give_a_panel_and_an_svg(checkpoint, tmp_path):
    draw(tmp_path / "one.png")
    (tmp_path / "many").mkdir()
    draw(tmp_path / "many" / "a.png")
    draw(tmp_path / "many" / "b.jpg", size=(40, 200))
    from PIL import Image

    draw(tmp_path / "c.png", size=(90, 120))
    Image.open(tmp_path / "c.png").save(tmp_path / "many" / "c.gif")  # read from a folder too
    proc = run_cli(
        [str(checkpoint), str(tmp_path / "one.png"), str(tmp_path / "many"), "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        module="inktrace_train.predict",
    )
    assert proc.returncode == 0, proc.stderr
    for name, (w, h) in (("one", (90, 120)), ("a", (90, 120)), ("b", (200, 40)), ("c", (120, 90))):
        panel = cv2.imread(str(tmp_path / "out" / f"{name}.png"))
        assert panel is not None and panel.shape[0] > 64 * 4 and panel.shape[1] > 64 * 4 * 5
        root = ET.fromstring((tmp_path / "out" / f"{name}.svg").read_text())
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox") == f"0 0 {w} {h}"
        assert len(root.findall("{http://www.w3.org/2000/svg}g")) == 1  # one glyph: the cross
    assert proc.stdout.count("strokes ->") == 4 and "traced 4 of 4 images, 0 failed" in proc.stdout


def test_the_canvas_rule_keeps_the_aspect_and_inverts_paper(tmp_path):
    draw(tmp_path / "x.png", size=(60, 200))
    canvas = place(read_ink(tmp_path / "x.png"), 64)[0]  # the canvas rule, as predict applies it
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
        (["CKPT"], "give a checkpoint and at least one image"),
        (["--onnx", "missing.onnx", "x.png"], "missing.onnx"),
        (["x.png", "CKPT"], "cannot load checkpoint x.png: it is an image, not a PyTorch checkpoint"),
        (["empty.pth", "x.png"], "cannot load checkpoint empty.pth: the file is empty (0 bytes)"),
        (["cut.pth", "x.png"], "cannot load checkpoint cut.pth: its zip archive is incomplete"),
        (["CKPT", "x.png", "--device", "gpu"], "--device gpu is not a device: use cpu, cuda, cuda:N, mps or auto"),
        (["--onnx", "m.onnx", "x.png", "--device", "cuda"], "--device is for a checkpoint"),
        (["CKPT", "x.png", "--out", "x.png"], "--out x.png is a file: give a folder"),
        (["CKPT", "x.png", "--out", "."], "--out .: x.png of x.png would overwrite the input x.png"),
    ],
)
def test_bad_input_is_one_line(checkpoint, tmp_path, args, expected):
    (tmp_path / "notimage.png").write_text("hello")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "cut.pth").write_bytes(checkpoint.read_bytes()[:4000])  # a copy cut short
    draw(tmp_path / "x.png")
    args = [str(checkpoint) if a == "CKPT" else a for a in args]
    out = [] if "--out" in args else ["--out", "out"]
    proc = cli(args + out, cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode != 0 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_folder_goes_on_past_bad_files_and_counts_them(checkpoint, tmp_path):
    (tmp_path / "in").mkdir()
    draw(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    png_claiming(tmp_path / "in" / "huge.png", 50_000, 50_000)
    draw(tmp_path / "in" / "z.png", size=(50, 70))
    proc = run_cli([str(checkpoint), "in", "--out", "out"], cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and "empty.png: not a readable image" in errors[0], errors
    assert "huge.png: its header claims more than 178,956,970 pixels, over the limit" in errors[1]
    assert "Traceback" not in proc.stderr
    assert "traced 2 of 4 images, 2 failed" in proc.stdout
    assert (tmp_path / "out" / "a.svg").is_file() and (tmp_path / "out" / "z.svg").is_file()


def test_images_of_one_name_keep_their_own_outputs_and_no_input_is_overwritten(checkpoint, tmp_path):
    for folder in ("scans", "more"):
        (tmp_path / folder).mkdir()
        draw(tmp_path / folder / "page.png")
    draw(tmp_path / "scans" / "page.jpg", size=(40, 200))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args = [str(checkpoint), "scans", "more/page.png", "scans/page.png", "--out", "out"]  # scans/page.png twice
    proc = run_cli(args, cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode == 0 and "traced 3 of 3 images" in proc.stdout, proc.stderr
    svgs = sorted(f.name for f in (tmp_path / "out").glob("*.svg"))
    assert svgs == ["page.jpg.svg", "page.png-2.svg", "page.png.svg"], svgs
    assert {ET.fromstring((tmp_path / "out" / n).read_text()).get("width") for n in svgs} == {"90", "200"}
    # --out the images' own folder: refused before anything is written, every input as it was
    again = run_cli([str(checkpoint), "more", "--out", "more"], cwd=tmp_path, module="inktrace_train.predict")
    assert again.returncode == 2 and "would overwrite the input more/page.png" in again.stderr
    assert sorted(p.name for p in (tmp_path / "more").iterdir()) == ["page.png"]
    # A file of the user's where an output would go (not an input, not an earlier output): refused.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "page.json").write_text("my notes")
    kept = run_cli([str(checkpoint), "more", "--out", "mine", "--json"], cwd=tmp_path, module="inktrace_train.predict")
    assert kept.returncode == 2 and "mine/page.json exists and is not an output of predict" in kept.stderr
    assert (tmp_path / "mine" / "page.json").read_text() == "my notes"
    again = run_cli([str(checkpoint), "scans", "--out", "out"], cwd=tmp_path, module="inktrace_train.predict")
    assert again.returncode == 0, again.stderr  # an earlier run's outputs are replaced
    assert all(p.read_bytes() == data for p, data in before.items())


def test_ink_on_a_transparent_background_is_traced(checkpoint, tmp_path):
    """Black ink on transparent black (an HTML canvas export): the alpha is the ink. Its RGB is
    black everywhere, so read without alpha the image is blank."""
    rgba = np.zeros((90, 120, 4), np.uint8)
    cv2.line(rgba, (10, 45), (110, 45), (0, 0, 0, 255), 5)
    cv2.line(rgba, (60, 5), (60, 85), (0, 0, 0, 255), 5)
    cv2.imwrite(str(tmp_path / "canvas.png"), rgba)
    from inktrace_train.evaluation.imaging import read_grey

    grey = read_grey(tmp_path / "canvas.png")
    assert grey[45, 60] == 0 and grey[5, 5] == 255  # ink on white paper
    assert np.array_equal(read_grey(rgba[..., [2, 1, 0, 3]]), grey)  # an RGBA array reads the same
    proc = cli([str(checkpoint), "canvas.png", "--out", "out", "--json"], cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode == 0 and "canvas.png: 1 glyphs" in proc.stdout, proc.stderr


@pytest.mark.parametrize("shape", [(40, 40), (40, 60)])
def test_the_alpha_of_an_image_turned_by_its_exif_orientation_turns_with_it(tmp_path, shape):
    """OpenCV turns the grey by the file's EXIF orientation; the alpha it reads unchanged it does
    not. A square canvas export got its ink where the paper is, a longer one lost its ink."""
    from PIL import Image

    from inktrace_train.evaluation.imaging import read_grey

    rgba = np.zeros((*shape, 4), np.uint8)  # black ink on transparent black: the alpha is the ink
    rgba[4:10, 4:30, 3] = 255  # a bar along the top
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise: the bar runs down the right side
    Image.fromarray(rgba, "RGBA").save(tmp_path / "turned.png", exif=exif.tobytes())
    grey = read_grey(tmp_path / "turned.png")
    expected = np.full(shape[::-1], 255, np.uint8)
    expected[4:30, shape[0] - 10 : shape[0] - 4] = 0
    assert np.array_equal(grey, expected)


def test_an_array_of_floats_outside_0_1_is_refused():
    from inktrace_train.errors import ToolError
    from inktrace_train.evaluation.imaging import read_grey

    assert read_grey(np.full((4, 4), 1.0))[0, 0] == 255
    with pytest.raises(ToolError, match="an image must be uint8, uint16 or float in \\[0, 1\\], not int64"):
        read_grey(np.zeros((4, 4), np.int64))
    with pytest.raises(ToolError, match="a float image must hold values in \\[0, 1\\], this one holds 0 to 255"):
        read_grey(np.linspace(0, 255, 16).reshape(4, 4))


def test_json_and_overlay_are_in_the_image_coordinates(checkpoint, tmp_path):
    img = np.full((150, 300), 255, np.uint8)  # two crosses: a page of two glyphs
    for cx in (60, 220):
        cv2.line(img, (cx - 40, 75), (cx + 40, 75), 0, 5)
        cv2.line(img, (cx, 35), (cx, 115), 0, 5)
    cv2.imwrite(str(tmp_path / "two.png"), img)
    args = [str(checkpoint), "two.png", "--out", "out", "--json", "--overlay"]
    proc = run_cli(args, cwd=tmp_path, module="inktrace_train.predict")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "two.json").read_text())
    assert result["image"] == {"width": 300, "height": 150}
    assert result["reading"] == {"model": str(checkpoint), "views": 4, "single": False}
    boxes = [g["box"] for g in result["glyphs"]]
    assert len(boxes) == 2 and all(abs(a - b) <= 3 for a, b in zip(boxes[0], [18, 33, 103, 118], strict=True))
    assert abs(boxes[1][0] - 178) <= 3 and abs(boxes[1][2] - 263) <= 3
    for glyph in result["glyphs"]:
        for stroke in glyph["strokes"]:
            x0, y0, x1, y1 = glyph["box"]
            pts = np.array(stroke["points"])
            assert ((pts >= [x0 - 1, y0 - 1]) & (pts <= [x1 + 1, y1 + 1])).all() and stroke["width"] > 0
    overlay = cv2.imread(str(tmp_path / "out" / "two.overlay.png"))
    assert overlay.shape == (150, 300, 3)
    assert not (tmp_path / "out" / "two.png").exists()  # no panel for a page of several glyphs
    root = ET.fromstring((tmp_path / "out" / "two.svg").read_text())
    assert root.get("viewBox") == "0 0 300 150" and len(root.findall("{http://www.w3.org/2000/svg}g")) == 2
    single = run_cli(args + ["--single"], cwd=tmp_path, module="inktrace_train.predict")
    assert single.returncode == 0, single.stderr
    once = json.loads((tmp_path / "out" / "two.json").read_text())
    assert len(once["glyphs"]) == 1 and once["reading"]["single"] is True

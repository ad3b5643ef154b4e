"""``python -m inktrace_train.ckpt``: inspect, verify, compare, convert, publish, on files of a real run."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import cli, run_cli, tiny, write_old_checkpoints
from inktrace_train.checkpoint.store import Checkpoint, load_checkpoint, sealed_bytes

RUN_ARGS = tiny("stage=all")


def ckpt_tool(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m inktrace_train.ckpt ARGS``, in this process (see helpers.cli)."""
    return cli([str(a) for a in args], cwd, module="inktrace_train.ckpt")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One real two-stage run (structural, then dense), shared by the tests of this module."""
    base = tmp_path_factory.mktemp("ckpt_tools")
    run = base / "run"
    proc = run_cli([*RUN_ARGS, f"hydra.run.dir={run}"], cwd=base)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


def best(run: Path, stage: str) -> Path:
    return run / "checkpoints" / stage / "checkpoint_best.pth"


def test_inspect_matches_the_file(run_dir):
    path = best(run_dir, "dense")
    raw = torch.load(path, weights_only=True)
    proc = ckpt_tool("inspect", "--json", path, cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in ("version", "epoch", "step_in_epoch", "global_step", "metric", "best_metric", "timestamp"):
        assert info[key] == raw[key], key
    for key in ("stage", "run_id", "torch_version", "git_commit"):
        assert info[key] == raw["metadata"][key], key
    assert info["converted_from"] is None
    assert info["parameters"] == sum(v.numel() for v in raw["model_state_dict"].values())
    assert info["parameters_by_module"]["heads.keypoints"] == sum(
        v.numel() for k, v in raw["model_state_dict"].items() if k.startswith("heads.keypoints.")
    )
    assert info["optimizer_state"] and info["scheduler_state"] and not info["scaler_state"]
    assert info["config"]["model.full_heads"] is True and info["config"]["data.source"] == "synthetic"
    assert info["config"]["training.lr"] == raw["config"]["training"]["lr"]

    text = ckpt_tool("inspect", path, cwd=run_dir)
    assert text.returncode == 0 and text.stderr == ""
    for line in (
        "stage:         dense",
        f"global_step:   {raw['global_step']}",
        "optimizer:     present",
        f"git_commit:    {raw['metadata']['git_commit']}",
        "model.full_heads",
    ):
        assert line in text.stdout, line


def test_verify_a_good_run(run_dir):
    proc = ckpt_tool("verify", run_dir, cwd=run_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("OK ") for line in lines) == 4 and "BAD " not in proc.stdout
    assert all("sha256 matches manifest" in line for line in lines if line.startswith("OK "))


def test_verify_finds_each_bad_file(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", copy / "checkpoints")
    flipped = copy / "checkpoints/structural/checkpoint_latest.pth"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 16])
    flipped.write_bytes(bytes(data))
    truncated = copy / "checkpoints/dense/checkpoint_best.pth"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    stray = copy / "extra.pth"  # not in any manifest: loaded anyway
    shutil.copy(best(run_dir, "dense"), stray)

    proc = ckpt_tool("verify", copy, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"BAD  {flipped}: corrupt (SHA-256 differs from the manifest)" in out
    assert f"BAD  {truncated}: truncated or corrupt (size 1000" in out
    assert f"OK   {stray} (" in out and "not in manifest" in out
    assert "5 checked: 3 OK, 2 bad" in out

    one = ckpt_tool("verify", flipped, cwd=tmp_path)
    assert one.returncode == 1 and f"BAD  {flipped}" in one.stdout


def test_compare_stages(run_dir):
    a, b = best(run_dir, "structural"), best(run_dir, "dense")
    proc = ckpt_tool("compare", "--json", a, b, cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    diffs = {key: (va, vb) for key, va, vb in result["config_diff"]}
    assert diffs["model.full_heads"] == (False, True) and diffs["stage.name"] == ("structural", "dense")
    raw_a, raw_b = (torch.load(p, weights_only=True)["config"]["training"]["lr"] for p in (a, b))
    assert diffs["training.lr"] == (raw_a, raw_b) and "model.embed_dim" not in diffs
    assert set(result["only_in_b"]) == {"heads.keypoints", "heads.width", "heads.offset"}
    assert result["only_in_a"] == {} and result["shape_differs"] == {}
    assert {"stem", "encoder", "decoder", "heads.skeleton"} <= set(result["relative_change"])
    assert result["metrics"]["stage"] == ["structural", "dense"]

    text = ckpt_tool("compare", a, b, cwd=run_dir).stdout
    only_b = text.split("only in B:")[1]
    assert "heads.keypoints" in only_b and "model.full_heads" in text and "training.lr" in text


def test_compare_takes_run_directories_and_keeps_its_columns_apart(run_dir):
    proc = ckpt_tool("compare", run_dir, best(run_dir, "structural"), cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"A: {best(run_dir, 'dense')}" in proc.stdout  # a run directory: its last stage's best
    for name in ("metric", "best_metric", "global_step"):
        line = next(line for line in proc.stdout.splitlines() if line.split()[:1] == [name])
        assert len(line.split()) == 3, line  # name, A, B: never run together


def test_compare_with_itself_is_zero(run_dir):
    path = best(run_dir, "dense")
    result = json.loads(ckpt_tool("compare", "--json", path, path, cwd=run_dir).stdout)
    assert result["config_diff"] == [] and result["only_in_a"] == {} and result["only_in_b"] == {}
    assert result["relative_change"] and all(v == 0 for v in result["relative_change"].values())


@pytest.mark.parametrize(
    "layout,missing",
    [
        ("bare", "optimizer_state_dict, scheduler_state_dict, epoch, global_step, config"),
        ("model-dict", "scheduler_state_dict, global_step, config"),
        ("flat", "optimizer_state_dict, scheduler_state_dict, global_step"),
    ],
)
def test_convert_older_layouts(tmp_path, layout, missing):
    sd = write_old_checkpoints(tmp_path)["bare"]
    proc = ckpt_tool("convert", f"{layout}.pth", "new.pth", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"({layout} layout)" in proc.stdout.replace("the ", "") and f"missing: {missing}" in proc.stdout
    new = torch.load(tmp_path / "new.pth", weights_only=True)
    assert new["version"] == 1 and "converted_from" not in new["metadata"]
    assert new["model_state_dict"].keys() == sd.keys()
    assert all(torch.equal(new["model_state_dict"][k], v) for k, v in sd.items())
    assert (new["optimizer_state_dict"] is not None) == (layout == "model-dict")
    if layout == "flat":
        assert new["config"]["model"]["embed_dim"] == 32 and new["config"]["training"]["lr"] == 2e-3
    assert new["metadata"]["converted"] == {
        "from_layout": layout,
        "missing": missing.split(", "),
        "source": f"{layout}.pth",
    }
    assert load_checkpoint(tmp_path / "new.pth").metadata.get("converted_from") is None  # v1: no conversion
    info = json.loads(ckpt_tool("inspect", "--json", "new.pth", cwd=tmp_path).stdout)
    assert info["version"] == 1 and info["converted_from"] is None and info["converted"]["from_layout"] == layout


def test_the_tools_mute_the_loaders_warnings_only_while_they_run(tmp_path, caplog):
    """convert reports an old layout itself (the loader's warning would repeat it), and a caller
    in the same process keeps the loader's warnings after: a test's caplog, a notebook."""
    write_old_checkpoints(tmp_path)
    with caplog.at_level(logging.WARNING):
        proc = ckpt_tool("convert", "bare.pth", "new.pth", cwd=tmp_path)
        assert proc.returncode == 0 and "(the bare layout)" in proc.stdout
        assert not caplog.records
        load_checkpoint(tmp_path / "bare.pth")
    assert "bare" in caplog.text and caplog.records[0].name == "inktrace_train.checkpoint.store"


def test_convert_refuses_to_overwrite(tmp_path):
    write_old_checkpoints(tmp_path)
    (tmp_path / "taken.pth").write_bytes(b"keep me")
    proc = ckpt_tool("convert", "bare.pth", "taken.pth", cwd=tmp_path)
    assert proc.returncode == 2 and "--force" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert (tmp_path / "taken.pth").read_bytes() == b"keep me"
    same = ckpt_tool("convert", "bare.pth", "./bare.pth", "--force", cwd=tmp_path)
    assert same.returncode == 2 and "onto itself" in same.stderr
    forced = ckpt_tool("convert", "bare.pth", "taken.pth", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and torch.load(tmp_path / "taken.pth", weights_only=True)["version"] == 1


def test_publish_keeps_what_a_model_is_shared_as(run_dir, tmp_path):
    """A run directory published: the dense best's weights, config and metric, none of the
    resume-only states; it loads, it is smaller, and a dense stage fine-tunes from it."""
    proc = ckpt_tool("publish", run_dir, "model.pth", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fine-tune from it with stage.init_from=model.pth" in proc.stdout  # the command, ready to paste
    source, out = best(run_dir, "dense"), tmp_path / "model.pth"
    raw, new = torch.load(source, weights_only=True), torch.load(out, weights_only=True)
    assert all(torch.equal(new["model_state_dict"][k], v) for k, v in raw["model_state_dict"].items())
    for key in ("config", "metric", "epoch", "global_step", "version"):
        assert new[key] == raw[key], key
    for key in ("optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict", "rng_state"):
        assert new[key] is None, key
    assert new["metadata"]["stage"] == "dense" and new["metadata"]["published"]["source"] == str(source)
    assert out.stat().st_size < 0.6 * source.stat().st_size
    assert hashlib.sha256(out.read_bytes()).hexdigest() in proc.stdout
    assert load_checkpoint(out).stage == "dense"

    again = ckpt_tool("publish", run_dir, "model.pth", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and len(again.stderr.splitlines()) == 1

    tune = run_cli(
        [*tiny("stage=dense", "training.epochs=1"), f"stage.init_from={out}", "hydra.run.dir=t"], cwd=tmp_path
    )
    assert tune.returncode == 0, tune.stderr[-2000:]
    assert "transferred  encoder" in (tmp_path / "t/init_report_dense.txt").read_text()


def variant_of(source: Path, out: Path, change) -> Path:
    """A copy of the checkpoint ``source`` with ``change(checkpoint)`` applied, as another run's file."""
    ckpt = load_checkpoint(source)
    change(ckpt)
    out.write_bytes(sealed_bytes(ckpt.to_dict()))
    return out


def test_average_is_the_mean_of_the_weights(run_dir, tmp_path):
    """Two checkpoints of one architecture average into a shareable model: each weight the mean
    of theirs, the first one's config, no metric, its sources named; predict traces with it."""
    source = best(run_dir, "dense")
    torch.manual_seed(0)
    noise = {
        k: torch.randn_like(v) for k, v in load_checkpoint(source).model_state_dict.items() if v.is_floating_point()
    }

    def shifted(ckpt: Checkpoint) -> None:
        ckpt.model_state_dict = {k: v + noise[k] if k in noise else v for k, v in ckpt.model_state_dict.items()}

    other = variant_of(source, tmp_path / "other.pth", shifted)
    proc = ckpt_tool("average", run_dir, other, "--out", "soup.pth", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    soup, first = load_checkpoint(tmp_path / "soup.pth"), load_checkpoint(source)
    for key, value in first.model_state_dict.items():
        expected = value + noise[key] / 2 if key in noise else value
        assert torch.allclose(soup.model_state_dict[key], expected, atol=1e-6), key
    assert soup.config == first.config and soup.metric is None and soup.optimizer_state_dict is None
    assert soup.metadata["averaged"]["sources"] == [str(source), str(other)]
    assert hashlib.sha256((tmp_path / "soup.pth").read_bytes()).hexdigest() in proc.stdout
    shown = ckpt_tool("inspect", "soup.pth", cwd=tmp_path)
    assert f"averaged from: 2 checkpoints (ckpt average): {source}, {other}" in shown.stdout

    image = tmp_path / "glyph.png"
    canvas = np.full((64, 64), 255, np.uint8)
    canvas[30:34, 10:54] = 0
    Image.fromarray(canvas).save(image)
    traced = cli(
        [str(tmp_path / "soup.pth"), str(image), "--out", "traced", "--json"], tmp_path, module="inktrace_train.predict"
    )
    assert traced.returncode == 0, traced.stderr

    again = ckpt_tool("average", run_dir, other, "--out", "soup.pth", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and len(again.stderr.splitlines()) == 1


def test_average_refuses_other_architectures(run_dir, tmp_path):
    """One line naming the file and the key that differs; nothing is written."""
    source = best(run_dir, "dense")

    def wider(ckpt: Checkpoint) -> None:
        ckpt.config["model"]["embed_dim"] = 48

    def headless(ckpt: Checkpoint) -> None:
        ckpt.model_state_dict = {k: v for k, v in ckpt.model_state_dict.items() if not k.startswith("heads.keypoints.")}

    cases = {
        "wide.pth": (wider, "model.embed_dim=48 where"),
        "headless.pth": (headless, "tensor heads.keypoints."),
    }
    for name, (change, message) in cases.items():
        variant_of(source, tmp_path / name, change)
        proc = ckpt_tool("average", source, name, "--out", "soup.pth", cwd=tmp_path)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert name in proc.stderr and message in proc.stderr, proc.stderr
        assert not (tmp_path / "soup.pth").exists()
    alone = ckpt_tool("average", source, source, "--out", "soup.pth", cwd=tmp_path)
    assert alone.returncode == 2 and "at least two different checkpoints" in alone.stderr


def test_a_foreign_state_dict_is_not_published_or_averaged_and_verify_says_what_it_lacks(run_dir, tmp_path):
    """Another model's bare state dict loads as an older layout. publish used to call the result
    a file with "the weights, config and metric"; average answered with "model={} where ... None"."""
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "linear.pth")
    published = ckpt_tool("publish", "linear.pth", "out.pth", cwd=tmp_path)
    assert published.returncode == 1 and published.stderr.strip().endswith(
        "cannot publish linear.pth: it holds no model config (an older or foreign file), so predict, evaluate "
        "and stage.init_from could not rebuild its model"
    )
    averaged = ckpt_tool("average", best(run_dir, "dense"), "linear.pth", "--out", "soup.pth", cwd=tmp_path)
    assert averaged.returncode == 1 and "cannot average linear.pth: it holds no model config" in averaged.stderr
    assert not (tmp_path / "out.pth").exists() and not (tmp_path / "soup.pth").exists()
    verified = ckpt_tool("verify", "linear.pth", cwd=tmp_path)
    assert verified.returncode == 0 and "an older layout (bare) without optimizer_state_dict" in verified.stdout
    assert "config" in verified.stdout.split("without", 1)[1]


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "nope.pth"),
        ("verify", "nope"),
        ("compare", "nope.pth", "nope.pth"),
        ("convert", "nope.pth", "out.pth"),
        ("publish", "nope.pth", "out.pth"),
        ("average", "nope.pth", "nope.pth", "--out", "out.pth"),
    ],
)
def test_missing_path_is_one_line(tmp_path, args):
    proc = ckpt_tool(*args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    missing = {"verify": "no such file or directory: nope", "convert": "no such file: nope.pth"}.get(
        args[0], "no such file or directory: nope.pth"
    )
    assert proc.stderr.splitlines() == [f"inktrace-ckpt: error: {missing}"]


def test_not_a_checkpoint_is_one_line(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for name in ("junk.pth", "list.pth"):
        proc = ckpt_tool("inspect", name, cwd=tmp_path)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and name in proc.stderr
        assert "Traceback" not in proc.stderr

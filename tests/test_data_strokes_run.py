"""Training on your own strokes as a user does: `data=strokes` on each format (both renderers),
a custom source from docs/data.md mixed with stroke files, one-line errors, and exact resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from helpers import REPO, cli, kill_at_step, run_cli, saved, tiny

FIXTURES = REPO / "tests/data/strokes"
SMALL = ["data.train_samples=32", "data.val_samples=8", "training.batch_size=16", "data.test_fraction=0"]


def assert_trained(cwd: Path, proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((cwd / "run/run.json").read_text())["stages"]["structural"]
    assert status["status"] == "done" and status["epochs"] == 1
    best = saved(cwd / "run" / status["best_checkpoint"])
    assert best["metric"] == pytest.approx(status["best_metric"]) and best["config"]["data"]["source"] in (
        "strokes",
        "custom",
    )
    return best


# val_fraction per folder: the smallest that leaves val and train both non-empty for its keys.
@pytest.mark.parametrize(
    "folder,val_fraction,renderer,glyphs",
    [
        ("svg", 0.5, "cpu", "3 glyphs (svg 3)"),
        ("inkml", 0.5, "device", "4 glyphs (inkml 4)"),
        ("ndjson", 0.3, "cpu", "4 glyphs (ndjson 4)"),
    ],
)
def test_tiny_run_on_each_format(workdir, folder, val_fraction, renderer, glyphs):
    args = tiny("data=strokes", f"data.path={FIXTURES / folder}", f"data.val_fraction={val_fraction}")
    proc = run_cli(args + SMALL + [f"data.renderer={renderer}", "hydra.run.dir=run"], cwd=workdir)
    assert_trained(workdir, proc)
    assert f"data.path={FIXTURES / folder}: {glyphs} from " in proc.stdout + proc.stderr


def test_a_relative_data_path_resumed_from_another_folder_names_where_it_is(workdir):
    """data.path=my_ink is relative to the folder the run started in; resumed from elsewhere it
    used to say only 'no such file or folder' (and record the resume as if it had run)."""
    import shutil

    shutil.copytree(FIXTURES / "svg", workdir / "my_ink")
    args = tiny("data=strokes", "data.path=my_ink", "data.val_fraction=0.5")
    assert_trained(workdir, run_cli(args + SMALL + ["hydra.run.dir=run"], cwd=workdir))
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    status = (workdir / "run/run.json").read_text()
    proc = run_cli([f"+resume={workdir / 'run'}", "training.epochs=2"], cwd=elsewhere)
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        f"resume: data.path=my_ink is relative to {workdir}, where this run was started: resume from there, "
        f"or give data.path={workdir / 'my_ink'}"
    )
    assert (workdir / "run/run.json").read_text() == status  # refused before anything was recorded
    moved = run_cli(
        [f"+resume={workdir / 'run'}", "training.epochs=2", f"data.path={workdir / 'my_ink'}"], cwd=elsewhere
    )
    assert moved.returncode == 0, moved.stderr[-2000:]
    assert saved(workdir / "run")["epoch"] == 2


def docs_commands():
    text = (REPO / "docs/data.md").read_text()
    lines = [ln.split("  #")[0].strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S) for ln in b.splitlines()]
    return [ln for ln in lines if ln.startswith("python -m inktrace_train ")]


@pytest.mark.parametrize("command", docs_commands())
def test_the_guide_commands_compose(workdir, command):
    proc = run_cli(command.split()[3:] + ["--cfg", "job"], cwd=workdir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "data:" in proc.stdout and not (workdir / "outputs").exists()


def docs_source() -> str:
    """The custom source of docs/data.md, exactly as printed there."""
    text = (REPO / "docs/data.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "class Spirals" in b]
    return code


def test_tiny_run_on_the_documented_custom_source_mixed_with_stroke_files(workdir):
    (workdir / "my_spirals.py").write_text(docs_source())
    args = tiny(
        "data=custom",
        "data.source_target=my_spirals.Spirals",
        "+data.source_args.n=40",
        f"data.extra_path={FIXTURES}",
        "data.val_fraction=0.3",
    )
    proc = run_cli(args + SMALL + ["hydra.run.dir=run"], cwd=workdir)  # python -m: the cwd is on sys.path
    best = assert_trained(workdir, proc)
    assert best["config"]["data"]["source_args"] == {"n": 40}
    assert f"data.extra_path={FIXTURES}: 11 glyphs" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args,expected",
    [
        (["data=strokes"], "data.source=strokes needs data.path=PATH"),
        (["data=custom"], "data.source=custom needs data.source_target=package.module.Class"),
        (["data.path=ink"], "data.path is read by data=strokes only"),
        (["data=custom", "data.source_target=not a path"], "is not a dotted path like package.module.Class"),
        (["data=strokes", "data.path=missing_folder"], "data.path=missing_folder: no such file or folder"),
        (["data=custom", "data.source_target=nowhere.Source"], "cannot import nowhere"),
        (["data=custom", "data.source_target=a.B", "data.source_args.n=4"], "write +data.source_args.n=4"),
    ],
)
def test_bad_data_options_are_one_line_and_leave_nothing(workdir, args, expected):
    proc = cli(tiny(*args) + ["hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (workdir / "run").exists()


@pytest.mark.slow
def test_a_killed_run_on_stroke_files_resumes_exactly(workdir):
    run = (
        tiny(
            "data=strokes",
            f"data.path={FIXTURES}",
            "data.val_fraction=0.3",
            "training.epochs=2",
            "training.log_every_n_steps=1",
            "training.save_every_n_steps=1",
        )
        + SMALL
    )
    assert run_cli(run + ["hydra.run.dir=full"], cwd=workdir).returncode == 0
    kill_at_step(run, workdir, Path("cut"), min_step=1)
    assert json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]["status"] == "running"
    resumed = run_cli(["+resume=cut"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = saved(workdir / "full")
    b = saved(workdir / "cut")
    assert a["global_step"] == b["global_step"] == 4
    for name, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][name]), name


def test_a_failed_start_in_a_folder_of_your_own_removes_only_what_it_wrote(workdir):
    """hydra.run.dir=. and a start that fails (no usable glyph): the failed-start cleanup deleted
    the whole folder, the user's own files with it."""
    (workdir / "notes.txt").write_text("my notes")
    (workdir / "bad.ndjson").write_text("nope\n")
    proc = run_cli(tiny("data=strokes", "data.path=bad.ndjson", "hydra.run.dir=."), cwd=workdir)
    assert proc.returncode == 2 and "no usable glyph" in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.ndjson", "notes.txt"]
    assert (workdir / "notes.txt").read_text() == "my notes"
    fresh = run_cli(tiny("data=strokes", "data.path=bad.ndjson", "hydra.run.dir=new"), cwd=workdir)
    assert fresh.returncode == 2 and not (workdir / "new").exists()  # a folder it made goes entirely

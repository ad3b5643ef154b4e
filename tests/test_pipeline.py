"""Stages as one pipeline: stage=all, init_from with architecture checks, pipeline resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from helpers import kill_at_step, run_cli, saved, tiny
from inktrace_train.checkpoint.store import CheckpointError
from inktrace_train.errors import UserError
from inktrace_train.train.transfer import fingerprint, resolve_init_path, transfer_weights

PIPE = tiny("stage=all", "training.epochs=2")


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("pipe")
    proc = run_cli(PIPE + ['stage.overrides.dense=["training.lr=2e-4"]', "hydra.run.dir=run"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "run", proc


@pytest.mark.slow
def test_stage_all_trains_every_stage_in_one_run_directory(pipeline_run):
    run, _ = pipeline_run
    status = json.loads((run / "run.json").read_text())
    assert status["pipeline"] == ["structural", "dense"]
    for stage in ("structural", "dense"):
        s = status["stages"][stage]
        assert s["status"] == "done" and s["epochs"] == 2 and s["started"] <= s["ended"]
        assert s["best_checkpoint"] == f"checkpoints/{stage}/checkpoint_best.pth"
        assert saved(run / s["best_checkpoint"])["metric"] == pytest.approx(s["best_metric"])
        assert (run / f"tb/{stage}").is_dir()
    assert saved(run / "checkpoints/dense/checkpoint_best.pth")["metadata"]["stage"] == "dense"


@pytest.mark.slow
def test_each_stage_keeps_its_own_config_and_overrides(pipeline_run):
    run, _ = pipeline_run
    from omegaconf import OmegaConf

    structural = OmegaConf.load(run / "checkpoints/structural/config.yaml")
    dense = OmegaConf.load(run / "checkpoints/dense/config.yaml")
    assert (structural.training.lr, structural.training.mask_ratio, structural.model.full_heads) == (1e-3, 0.6, False)
    assert (dense.training.lr, dense.training.mask_ratio, dense.model.full_heads) == (2e-4, 0.0, True)
    assert structural.training.epochs == dense.training.epochs == 2  # the command line reaches every stage


@pytest.mark.slow
def test_dense_starts_from_structural_best(pipeline_run):
    run, proc = pipeline_run
    report = (run / "init_report_dense.txt").read_text()
    assert "checkpoints/structural/checkpoint_best.pth" in report
    for head in ("heads.keypoints", "heads.width", "heads.offset"):
        assert re.search(rf"new +{re.escape(head)} ", report), head
    assert re.search(r"transferred +encoder ", report) and "dropped" not in report
    # The backbone dense trained from, before its first step, is structural's best, tensor for tensor.
    best = saved(run / "checkpoints/structural/checkpoint_best.pth")["model_state_dict"]
    assert f"fingerprint of the transferred weights: {fingerprint(best, list(best))}" in report
    assert "fingerprint of the transferred weights" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_backbone_mismatch_names_each_field(pipeline_run, tmp_path):
    run, _ = pipeline_run
    proc = run_cli(
        [
            "stage=dense",
            f"stage.init_from={run}",
            "model=tiny",
            "data=synthetic",
            "model.embed_dim=64",
            "model.num_heads=4",
            "hydra.run.dir=bad",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert (
        f"name the file: stage.init_from={run / 'checkpoints/dense/checkpoint_best.pth'}" in proc.stdout + proc.stderr
    )
    assert "backbone mismatch with stage.init_from checkpoint" in proc.stderr
    assert "(checkpoint vs config): model.embed_dim 32 vs 64; model.num_heads 2 vs 4." in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_the_dense_command_a_structural_run_prints_runs_as_printed(tmp_path):
    """It named only stage=dense and stage.init_from: a tiny model's run then failed on the
    default backbone, and with model=tiny added by hand trained the dense stage on other data."""
    import shlex

    proc = run_cli(tiny("data.train_samples=32", "training.batch_size=16", "hydra.run.dir=run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "dense stage:" in ln]
    command = shlex.split(line.split("dense stage:", 1)[1])
    assert command[:3] == ["python", "-m", "inktrace_train"] and "model=tiny" in command and "data=synthetic" in command
    assert not any(a.startswith(("hydra.", "training.epochs=")) for a in command)
    dense = run_cli([*command[3:], "training.epochs=1", "hydra.run.dir=dense"], cwd=tmp_path)
    assert dense.returncode == 0, dense.stderr[-2000:]
    assert json.loads((tmp_path / "dense/run.json").read_text())["stages"]["dense"]["status"] == "done"


def test_the_dense_command_of_a_sweep_job_first_run_by_a_resume(tmp_path):
    """Such a job has only .hydra/resume-*/ (no first launch record): its command came out bare;
    and a sweep preset among its overrides made the dense command a sweep."""
    from inktrace_train.run.rundir import RunDir
    from inktrace_train.train.pipeline import dense_stage_command

    job = tmp_path / "sweep" / "2"
    for stamp, lr in (("2026-12-01_10-00-00", "0.01"), ("2026-12-02_10-00-00", "0.001")):
        (job / ".hydra" / f"resume-{stamp}").mkdir(parents=True)
        lines = ["sweep=lr", f"training.lr={lr}", "model=tiny", "training.epochs=3", "hydra.run.dir=x"]
        (job / ".hydra" / f"resume-{stamp}" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in lines))
    assert dense_stage_command(RunDir(job)) == (
        f"python -m inktrace_train training.lr=0.001 model=tiny stage=dense stage.init_from={job}"
    )


def test_shape_mismatch_is_an_error_unless_allowed():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    source = dict(model.state_dict())
    source["1.weight"] = torch.zeros(2, 3)
    with pytest.raises(UserError, match=r"1.weight: checkpoint \(2, 3\) vs model \(1, 3\)"):
        transfer_weights(model, source, allow_shape_mismatch=[])
    report = transfer_weights(model, source, allow_shape_mismatch=["1.*"])
    assert report["mismatched"] == {"1": ["1.weight"]} and "1.bias" in report["transferred"]["1"]


def _run_holding(root: Path, *stages: str) -> Path:
    for stage in stages:
        (root / "checkpoints" / stage).mkdir(parents=True)
        (root / "checkpoints" / stage / "checkpoint_best.pth").write_bytes(b"")
    return root


def test_init_from_a_whole_pipeline_run_says_which_best_it_takes(tmp_path, caplog):
    """`stage=dense stage.init_from=RUN` on a stage=all run takes structural's best, as the
    guide says; the warning names the file that would fine-tune the run's own dense model."""
    run = _run_holding(tmp_path / "all", "structural", "dense")
    with caplog.at_level("WARNING"):
        assert resolve_init_path(str(run), "dense") == run / "checkpoints/structural/checkpoint_best.pth"
    assert f"name the file: stage.init_from={run / 'checkpoints/dense/checkpoint_best.pth'}" in caplog.text
    caplog.clear()
    structural_only = _run_holding(tmp_path / "s", "structural")
    with caplog.at_level("WARNING"):
        resolve_init_path(str(structural_only), "dense")
    assert not caplog.text


def test_init_from_a_run_without_the_previous_stage_names_what_it_holds(tmp_path):
    """A dense-only run (a fine-tune) given to stage=dense: the error names its dense best."""
    run = _run_holding(tmp_path / "ft", "dense")
    with pytest.raises(CheckpointError) as e:
        resolve_init_path(str(run), "dense")
    assert "holds no structural checkpoint" in str(e.value)
    assert f"name the file: stage.init_from={run / 'checkpoints/dense/checkpoint_best.pth'}" in str(e.value)
    empty = _run_holding(tmp_path / "empty")
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"holds no structural checkpoint \(looked for [^)]*\)$"):
        resolve_init_path(str(empty), "dense")


@pytest.mark.slow
def test_resume_meant_as_init_is_caught(pipeline_run, tmp_path):
    _run, _ = pipeline_run
    structural_only = tmp_path / "s"
    assert run_cli(tiny("training.epochs=2") + [f"hydra.run.dir={structural_only}"], cwd=tmp_path).returncode == 0
    proc = run_cli([f"+resume={structural_only}", "stage=dense"], cwd=tmp_path)
    assert proc.returncode == 2
    assert f"use stage=dense stage.init_from={structural_only}" in proc.stderr


@pytest.mark.slow
def test_pipeline_killed_in_dense_resumes_to_identical_weights(tmp_path):
    args = PIPE + ["training.save_every_n_steps=1"]
    assert run_cli(args + ["hydra.run.dir=full"], cwd=tmp_path).returncode == 0

    kill_at_step(args, tmp_path, Path("cut"), min_step=1, stage="dense")
    status = json.loads((tmp_path / "cut/run.json").read_text())["stages"]
    assert status["structural"]["status"] == "done" and status["dense"]["status"] == "running"

    resumed = run_cli(["+resume=cut"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming cut at stage dense" in resumed.stdout
    a = saved(tmp_path / "full/checkpoints/dense/checkpoint_latest.pth")["model_state_dict"]
    b = saved(tmp_path / "cut/checkpoints/dense/checkpoint_latest.pth")["model_state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "cut/run.json").read_text())["stages"]["dense"]["status"] == "done"


@pytest.mark.slow
def test_a_pipeline_killed_between_stages_starts_dense_from_structural_best(pipeline_run, tmp_path):
    """Killed after structural finished, before dense saved anything: the resume starts dense from
    structural's best exactly as the uninterrupted pipeline did (it once started it from scratch)."""
    import shutil

    run, _ = pipeline_run
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    for name in ("tb/dense", "init_report_dense.txt", "checkpoints/dense/manifest.json"):
        shutil.rmtree(cut / name) if (cut / name).is_dir() else (cut / name).unlink()
    for stale in (cut / "checkpoints/dense").glob("*.pth"):
        stale.unlink()
    status = json.loads((cut / "run.json").read_text())
    status["stages"]["dense"] = {"status": "running"}
    (cut / "run.json").write_text(json.dumps(status))
    resumed = run_cli([f"+resume={cut}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage dense never saved a checkpoint, so it starts over" in resumed.stdout
    assert "starts from scratch" not in resumed.stdout + resumed.stderr
    for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
        a = saved(run / f"checkpoints/dense/{name}")["model_state_dict"]
        b = saved(cut / f"checkpoints/dense/{name}")["model_state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name

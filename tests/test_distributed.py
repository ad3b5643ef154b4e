"""Data parallelism under torchrun (gloo, 2 processes on this CPU machine): one run directory,
one set of checkpoints, the same global batches as one process, and resume across world sizes.

Tolerance: two processes average their gradients in another order than one process sums
them, and AdamW amplifies such float noise where gradients are near zero; after 8 steps the
weights differed by 1.1e-5 at most (measured without accumulation). The tests allow 1e-4."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import latest_step, needs_submitit, rows, run_cli, saved, tiny

# 2 epochs of 4 micro-batches, 2 per optimizer step: the ranks skip the gradient all-reduce (no_sync) on the first;
# with a weight average, which every rank keeps and validates alike.
ARGS = tiny(
    "training.epochs=2",
    "data.train_samples=128",
    "training.save_interval=1",
    "training.grad_accum_steps=2",
    "training.ema_decay=0.9",
)
TOLERANCE = 1e-4


def torchrun(args: list, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "inktrace_train",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def weights(run: Path, name: str = "checkpoint_latest.pth") -> dict:
    return saved(run, name=name)["model_state_dict"]


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same job on 2 processes (torchrun) and on 1."""
    cwd = tmp_path_factory.mktemp("ddp")
    two = torchrun([*ARGS, "hydra.run.dir=two"], cwd)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_cli([*ARGS, "hydra.run.dir=one"], cwd)
    assert one.returncode == 0, one.stderr[-3000:]
    return cwd, two


@pytest.mark.slow
def test_two_processes_make_one_run_directory_and_train_the_same_model(runs):
    cwd, proc = runs
    assert sorted(p.name for p in cwd.iterdir()) == ["one", "two"]  # no directory per rank, no outputs/
    assert sorted(p.name for p in (cwd / "two").iterdir()) == [
        ".hydra",
        "checkpoints",
        "config.yaml",
        "env.json",
        "run.json",
        "run.lock",
        "tb",
        "train.log",
    ]
    assert proc.stdout.count("run finished: ") == 1  # the other rank logs warnings only
    assert "(process 1 of 2, 1 threads)" in proc.stdout  # 2 cores, 2 processes: one thread each
    processes = json.loads((cwd / "two/env.json").read_text())["processes"]
    assert processes["world_size"] == 2 and [r["device"] for r in processes["ranks"]] == ["cpu", "cpu"]
    assert processes["per_rank_batch"] * 2 == processes["global_batch"] and processes["ranks"][1]["threads"] >= 1
    two = weights(cwd / "two")
    assert not any(k.startswith("module.") for k in two)
    assert max_difference(two, weights(cwd / "one")) < TOLERANCE
    averages = [saved(cwd / run)["ema_state_dict"] for run in ("two", "one")]
    assert averages[0]["updates"] == averages[1]["updates"] == 4
    assert max_difference(averages[0]["weights"], averages[1]["weights"]) < TOLERANCE
    status = json.loads((cwd / "two/run.json").read_text())["stages"]["structural"]
    assert status["status"] == "done" and status["epochs"] == 2


def cut_after_epoch_1(run: Path, into: Path) -> Path:
    """The run as a kill right after its epoch-1 checkpoint would leave it."""
    shutil.copytree(run, into)
    for name in ("checkpoint_latest.pth", "checkpoint_epoch_0002.pth"):  # resume falls back to epoch 1
        (into / "checkpoints/structural" / name).unlink()
    status = json.loads((into / "run.json").read_text())
    status["stages"]["structural"]["status"] = "running"
    (into / "run.json").write_text(json.dumps(status))
    return into


@pytest.mark.slow
@pytest.mark.parametrize("started,resumed", [("two", 1), ("one", 2)])
def test_resume_on_another_number_of_processes_continues_the_same_batches(runs, started, resumed):
    cwd, _ = runs
    cut = cut_after_epoch_1(cwd / started, cwd / f"{started}_cut_{resumed}")
    proc = (run_cli if resumed == 1 else torchrun)([f"+resume={cut}"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" in proc.stdout and "at stage structural, epoch 2, optimizer step 2" in proc.stdout
    record = json.loads((cut / "run.json").read_text())["resumes"][-1]["processes"]  # it may differ per resume
    assert record["world_size"] == resumed and len(record["ranks"]) == resumed
    assert max_difference(weights(cut), weights(cwd / started)) < TOLERANCE


def test_bad_config_stops_every_rank_before_torch_with_one_line(tmp_path):
    proc = torchrun([*ARGS, "training.batch_size=31", "hydra.run.dir=bad"], tmp_path)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("inktrace_train: error:")]
    # Each rank refuses on its own; torchrun may stop the second before it has printed.
    assert 1 <= len(lines) <= 2 and all(
        "training.batch_size=31 (the global batch) must divide evenly" in ln for ln in lines
    )
    assert "inktrace_train/" not in proc.stderr  # no traceback of ours (torchrun reports the exit codes its way)
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_killed_torchrun_job_resumes_under_torchrun_to_the_same_weights(runs):
    """SIGKILL to the whole job (agent and workers) mid-epoch, then +resume= on 2 processes:
    the same world size, so the weights equal the uninterrupted 2-process run's bit for bit."""
    cwd, _ = runs
    args = [*ARGS, "training.save_every_n_steps=1", "hydra.run.dir=killed"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "inktrace_train"]
    job = subprocess.Popen(
        [*cmd, *args], cwd=cwd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while latest_step(cwd / "killed")[0] < 3 and job.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    step, epoch = latest_step(cwd / "killed")
    assert step == 3 and epoch == 1, (step, epoch)  # mid-epoch 2 (2 optimizer steps per epoch)

    proc = torchrun(["+resume=killed"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = weights(cwd / "two"), weights(cwd / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_stage_all_under_torchrun_starts_dense_from_structural_best(tmp_path):
    proc = torchrun([*tiny("stage=all"), "hydra.run.dir=pipe"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((tmp_path / "pipe/run.json").read_text())["stages"]
    assert status["structural"]["status"] == status["dense"]["status"] == "done"
    assert "checkpoints/structural/checkpoint_best.pth" in (tmp_path / "pipe/init_report_dense.txt").read_text()


@pytest.mark.slow
@needs_submitit
def test_slurm_local_preset_runs_two_jobs_side_by_side_through_submitit(tmp_path):
    """The Slurm launcher's path without Slurm: submitit's local executor runs both jobs at once,
    each capped at its cpus_per_task (1) intra-op thread, with the sweep's records and summary."""
    proc = run_cli(
        ["-m", "hydra/launcher=slurm_local", "training.lr=1e-3,5e-4", *tiny(), "hydra.sweep.dir=sw"], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = rows(tmp_path / "sw")
    assert sorted(r["overrides"] for r in table) == sorted(
        " ".join(["training.lr=" + lr, *tiny()]) for lr in ("0.001", "0.0005")
    )
    assert {r["status"] for r in table} == {"done"}
    for job in ("0", "1"):
        assert "(process 1 of 1, 1 threads)" in (tmp_path / "sw" / job / "train.log").read_text()
        assert (tmp_path / "sw" / job / "checkpoints/structural/checkpoint_best.pth").is_file()
    # Resumed by name alone (here, to extend it), it runs on its own launcher again: the jobs ran
    # on this machine, one after the other, and a Slurm sweep's would have trained on the login node.
    submitted = sorted((tmp_path / "sw/.submitit").iterdir())
    longer = run_cli(["+resume=sw", "training.epochs=2"], cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "Launching 2 jobs locally" not in longer.stdout + longer.stderr
    assert len(sorted((tmp_path / "sw/.submitit").iterdir())) > len(submitted)  # new submitit jobs
    assert {r["status"] for r in rows(tmp_path / "sw")} == {"done"}
    for job in ("0", "1"):
        manifest = json.loads((tmp_path / "sw" / job / "checkpoints/structural/manifest.json").read_text())
        assert manifest["files"]["checkpoint_latest.pth"]["epoch"] == 2


@pytest.mark.slow
def test_a_group_sigterm_under_torchrun_saves_on_every_rank_and_resumes_exactly(runs):
    """Slurm signals the whole job step: the agent, both ranks and their data-loader workers at
    once (and the agent forwards it to the ranks again). The workers ignore it, the ranks agree on
    the stop at their next agreement point, save the last completed step once, and exit cleanly;
    the resume on 2 processes equals the uninterrupted run bit for bit."""
    cwd, _ = runs
    args = [*ARGS, "training.save_every_n_steps=1", "data.num_workers=2", "hydra.run.dir=stopped"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "inktrace_train"]
    job = subprocess.Popen(
        [*cmd, *args], cwd=cwd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    while latest_step(cwd / "stopped")[0] < 1 and job.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGTERM)
    out, err = job.communicate(timeout=120)
    assert "stopped by SIGTERM in stage structural" in out + err, err[-3000:]
    assert "DataLoader worker" not in err and "inktrace_train/" not in err  # no worker death, no traceback of ours
    # One way on, from the main rank: the other rank's directory was a temporary one, now gone.
    assert (out + err).count("Continue with:") == 1
    assert f"Continue with: python -m inktrace_train +resume={cwd / 'stopped'}\n" in err
    step, _ = latest_step(cwd / "stopped")
    assert 1 <= step < 4, step  # saved before the end: 4 optimizer steps in all
    status = json.loads((cwd / "stopped/run.json").read_text())["stages"]["structural"]
    assert status["status"] == "preempted"

    proc = torchrun(["+resume=stopped"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = weights(cwd / "two"), weights(cwd / "stopped")
    assert all(torch.equal(a[k], b[k]) for k in a)

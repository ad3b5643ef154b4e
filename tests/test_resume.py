"""Tier 2: a run killed at any point and resumed with `+resume=PATH` alone matches the
uninterrupted run bit for bit: per-step losses and final weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import cli, kill_at_step, kill_when, latest_step, rows, run_cli, saved, tiny, write_old_checkpoints

# 3 epochs of 4 steps; every step logged so the loss sequence is compared step by step.
RUN = tiny(
    "training.epochs=3",
    "data.train_samples=128",
    "training.log_every_n_steps=1",
    "training.save_interval=1",
    "training.keep_last_n=2",
)


def losses(run_dir: Path) -> dict:
    events = EventAccumulator(str(run_dir / "tb/structural"), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in events.Scalars("structural/train/total")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """RUN from start to end, never stopped: what every interrupted run must end equal to."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    assert run_cli(RUN + ["hydra.run.dir=full"], cwd=cwd).returncode == 0
    return cwd / "full"


def assert_same_run(full: Path, cut: Path) -> None:
    """Losses of every step and the final weights and optimizer moments, bit for bit."""
    assert sorted(losses(cut)) == sorted(losses(full)) == list(range(1, 13))  # replayed steps purged, none missing
    assert losses(cut) == losses(full)  # exact float equality, step by step
    a = saved(full)
    b = saved(cut)
    for name, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][name]), name
    moments = [c["optimizer_state_dict"]["state"][0]["exp_avg_sq"] for c in (a, b)]
    assert moments[0].equal(moments[1])
    assert json.loads((cut / "run.json").read_text())["stages"]["structural"]["status"] == "done"


@pytest.mark.parametrize(
    "workers,mid_epoch",
    [
        (0, False),
        pytest.param(0, True, marks=pytest.mark.slow),
        pytest.param(2, True, marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_killed_and_resumed_run_matches_the_uninterrupted_run(uninterrupted, workdir, workers, mid_epoch):
    args = RUN + [f"data.num_workers={workers}"]
    if mid_epoch:
        args.append("training.save_every_n_steps=1")
    kill_at_step(args, workdir, Path("cut"), min_step=6 if mid_epoch else 4)
    step, _epoch = latest_step(workdir / "cut")
    assert 0 < step < 12, "the run was not interrupted"
    assert json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]["status"] == "running"
    launch = (workdir / "cut/.hydra/overrides.yaml").read_text()

    proc = run_cli(["+resume=cut"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(uninterrupted, workdir / "cut")
    assert (workdir / "cut/.hydra/overrides.yaml").read_text() == launch  # the launch record is never rewritten


def signal_after_epoch_1(workdir: Path, signum: int) -> tuple[int, str]:
    """Start RUN into ``cut``, send ``signum`` once epoch 1 is saved (step 4; it lands in a later
    epoch), and return the exit status and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *RUN, "hydra.run.dir=cut"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with SIGINT ignored, and Python then leaves it ignored:
        # give the child the default, as a terminal would (else Ctrl-C cannot be tested there).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while latest_step(workdir / "cut")[0] < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
def test_ctrl_c_saves_the_step_and_the_run_resumes_exactly(uninterrupted, workdir):
    code, err = signal_after_epoch_1(workdir, signal.SIGINT)
    assert code == 130, err[-3000:]
    ckpt = saved(workdir / "cut")
    assert err.strip() == (
        f"inktrace_train: interrupted (Ctrl-C) in stage structural, epoch {ckpt['epoch'] + 1}, optimizer step "
        f"{ckpt['global_step']}; a checkpoint of that step is saved. "
        f"Continue with: python -m inktrace_train +resume={workdir / 'cut'}"
    )
    assert json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]["status"] == "interrupted"
    resumed = run_cli(["+resume=cut"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(uninterrupted, workdir / "cut")


@pytest.mark.slow
def test_sigterm_saves_the_step_and_exits_75_then_resume_matches(uninterrupted, workdir):
    """What Slurm does before preempting a job: SIGTERM mid-epoch. The run saves the current
    step (log interval 1 here), says how to continue and exits 75; the resumed run is exact."""
    code, err = signal_after_epoch_1(workdir, signal.SIGTERM)
    assert code == 75, err[-3000:]
    ckpt = saved(workdir / "cut")
    assert 0 < ckpt["step_in_epoch"] <= 4 and ckpt["global_step"] < 12  # a step-level checkpoint
    assert f"stopped by SIGTERM in stage structural, epoch {ckpt['epoch'] + 1}, optimizer step " in err
    assert f"+resume={workdir / 'cut'}" in err and "Traceback" not in err
    assert json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]["status"] == "preempted"

    resumed = run_cli(["+resume=cut"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(uninterrupted, workdir / "cut")


# --- what a user gets wrong, and older files ---------------------------------------------

TINY_SHORT = tiny()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("finished")
    assert run_cli(TINY_SHORT + ["hydra.run.dir=run"], cwd=cwd).returncode == 0
    return cwd


@pytest.mark.slow
def test_resume_of_a_finished_stage_says_so_and_exits_0(finished_run):
    before = sorted(p.name for p in (finished_run / "run/checkpoints/structural").iterdir())
    proc = run_cli(["+resume=run"], cwd=finished_run)
    assert proc.returncode == 0 and "run is already finished (every stage done" in proc.stdout
    assert sorted(p.name for p in (finished_run / "run/checkpoints/structural").iterdir()) == before


def test_the_original_command_line_with_resume_is_accepted(finished_run):
    proc = run_cli(TINY_SHORT + ["+resume=run"], cwd=finished_run)
    assert proc.returncode == 0 and "already finished" in proc.stdout


@pytest.mark.parametrize(
    "args,expected",
    [
        (["+resume=missing/run"], "resume: no such file or directory: missing/run"),
        (["+resume=empty"], "resume: empty is not a run directory (it has no config.yaml and run.json), and holds"),
        (["+resume=garbage.pth"], "cannot load checkpoint garbage.pth"),
        (
            ["+resume=run", "training.lr=0.5"],
            "resume cannot change training.lr (0.001 -> 0.5); allowed: training.epochs",
        ),
        (["+resume=run", "stage=dense"], "use stage=dense stage.init_from=run (init_from takes weights"),
    ],
)
def test_resume_errors_are_one_clear_line_and_write_nothing(finished_run, args, expected):
    (finished_run / "empty").mkdir(exist_ok=True)
    (finished_run / "garbage.pth").write_bytes(b"not a checkpoint")
    before = sorted(str(p) for p in finished_run.rglob("*"))
    proc = cli(args, cwd=finished_run)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(str(p) for p in finished_run.rglob("*")) == before


def assert_same_weights(a: Path, b: Path) -> None:
    """The two runs' latest structural checkpoints hold equal weights."""
    wa, wb = (saved(run)["model_state_dict"] for run in (a, b))
    assert all(torch.equal(v, wb[k]) for k, v in wa.items())


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_over_on_resume(finished_run, tmp_path):
    """Nothing was saved but the config: +resume= starts the stage over in the same directory and
    ends with the weights of a run that was never stopped."""
    cut = tmp_path / "cut"
    kill_when(
        [*TINY_SHORT, f"hydra.run.dir={cut}"],
        tmp_path,
        lambda: '"running"' in ((cut / "run.json").read_text() if (cut / "run.json").is_file() else ""),
    )
    assert not list(cut.glob("checkpoints/*/*.pth")), "the run saved a checkpoint before it was killed"

    proc = run_cli([f"+resume={cut}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage structural never saved a checkpoint, so it starts over" in proc.stdout
    assert_same_weights(finished_run / "run", cut)
    assert json.loads((cut / "run.json").read_text())["stages"]["structural"]["status"] == "done"


@pytest.mark.slow
def test_a_run_killed_before_it_was_recorded_starts_again_on_resume(finished_run, tmp_path):
    """Killed after Hydra wrote .hydra/ but before config.yaml: +resume= runs the launch's own
    command line again in that directory (a new run there is not refused: nothing started)."""
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(finished_run / "run", cut)
    for name in ("config.yaml", "checkpoints", "tb", "train.log"):  # what a run records after .hydra/
        shutil.rmtree(cut / name) if (cut / name).is_dir() else (cut / name).unlink()
    (cut / "checkpoints/structural").mkdir(parents=True)
    (cut / "checkpoints/structural/.checkpoint_latest.pth.tmp999999").write_bytes(b"torn")
    proc = run_cli([f"+resume={cut}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "was stopped before its run was recorded; starting it again" in proc.stderr
    assert_same_weights(finished_run / "run", cut)
    assert not list(cut.rglob(".*.tmp*")), "a killed process's temp file survived the run"


@pytest.mark.slow
def test_an_extension_stopped_midway_continues_with_resume_alone(finished_run, tmp_path):
    """+resume=RUN training.epochs=3, killed in its second epoch: the command the stop message
    gives, +resume=RUN alone, trains on to epoch 3 (it used to say the run was finished)."""
    import shutil

    run = tmp_path / "extended"
    shutil.copytree(finished_run / "run", run)
    kill_when(["+resume=extended", "training.epochs=3"], tmp_path, lambda: latest_step(run)[1] >= 2)
    assert latest_step(run)[1] == 2
    proc = run_cli(["+resume=extended"], cwd=tmp_path)
    assert proc.returncode == 0 and "already finished" not in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert saved(run)["epoch"] == 3
    # report's wall time is the stage's training time over its sessions (it was empty outside a
    # sweep): the first run's and the last one's (the killed session's own time is lost)
    first = json.loads((finished_run / "run/run.json").read_text())["stages"]["structural"]["train_time_s"]
    total = json.loads((run / "run.json").read_text())["stages"]["structural"]["train_time_s"]
    assert 0 < first < total
    assert run_cli([str(run)], cwd=tmp_path, module="inktrace_train.report").returncode == 0
    assert [float(r["wall_time_s"]) for r in rows(run)] == [total]


@pytest.mark.slow
def test_resume_path_with_spaces_commas_and_equals(finished_run, tmp_path):
    import shutil

    odd = tmp_path / "runs, v2=final run"
    shutil.copytree(finished_run / "run", odd)
    proc = run_cli([f'+resume="{odd}"', "training.epochs=2"], cwd=tmp_path)  # docs/resume.md: '+resume="..."'
    assert proc.returncode == 0, proc.stderr
    assert saved(odd)["epoch"] == 2


@pytest.mark.parametrize(
    "layout,missing",
    [
        ("bare", "optimizer_state_dict, scheduler_state_dict, epoch, global_step, config"),
        ("model-dict", "scheduler_state_dict, global_step, config"),
        ("flat", "optimizer_state_dict, scheduler_state_dict, global_step"),
    ],
)
@pytest.mark.slow
def test_older_layouts_load_and_resume(tmp_path, layout, missing):
    from inktrace_train.checkpoint.store import load_checkpoint

    files = write_old_checkpoints(tmp_path)
    ckpt = load_checkpoint(tmp_path / f"{layout}.pth")
    assert ckpt.version == 1 and ckpt.metadata["converted_from"] == layout
    assert ckpt.metadata["missing"] == missing.split(", ")
    for k, v in (files[layout].get("model", files[layout].get("model_state_dict", files[layout]))).items():
        assert torch.equal(ckpt.model_state_dict[k], v)
    where = [] if layout == "bare" else ["hydra.run.dir=continued"]  # a dated directory, or the one named
    proc = run_cli([f"+resume={layout}.pth", *TINY_SHORT, *where], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert f"older checkpoint ({layout} layout)" in out and "at stage structural" in out
    assert "optimizer step None" not in out and "optimizer step not recorded (an older file" in out
    run = next((tmp_path / "outputs").glob("*/*")) if layout == "bare" else tmp_path / "continued"
    assert (run / "config.yaml").is_file() and (layout == "bare") == (tmp_path / "outputs").is_dir()
    resumed = saved(run)
    assert resumed["epoch"] == 1 and resumed["config"]["training"]["lr"] == (2e-3 if layout == "flat" else 1e-3)


@pytest.mark.slow
def test_auto_resume_continues_the_run_its_directory_holds(finished_run, tmp_path):
    """A requeued job runs its command again: with training.auto_resume=true the run its
    hydra.run.dir holds is resumed, not refused; the original .hydra record stays."""
    import shutil

    run = tmp_path / "requeued"
    shutil.copytree(finished_run / "run", run)
    launch = (run / ".hydra/overrides.yaml").read_text()
    args = [*TINY_SHORT, "training.auto_resume=true", f"hydra.run.dir={run}"]
    proc = run_cli([*args, "training.epochs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "holds this run already; resuming it" in proc.stdout + proc.stderr
    assert saved(run)["epoch"] == 2
    assert (run / ".hydra/overrides.yaml").read_text() == launch and list(run.glob(".hydra/resume-*/overrides.yaml"))

    changed = run_cli([*args, "training.lr=0.5"], cwd=tmp_path)  # not this run's config: refused as by +resume=
    assert changed.returncode == 2 and "resume cannot change training.lr" in changed.stderr


@pytest.mark.slow
def test_a_failed_checkpoint_write_is_one_line_and_loses_nothing(finished_run, tmp_path):
    """The disk fills up (here: a file-size limit, EFBIG) while the resumed run saves: the previous
    checkpoints stay byte for byte, no temp file is left, one line names the file and the cause."""
    import resource
    import shutil

    run = tmp_path / "full_disk"
    shutil.copytree(finished_run / "run", run)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints/structural").glob("*.pth")}

    def limit_file_size():  # big enough for logs and run.json, too small for a checkpoint
        resource.setrlimit(resource.RLIMIT_FSIZE, (300 * 1024, 300 * 1024))

    proc = subprocess.run(
        [sys.executable, "-m", "inktrace_train", f"+resume={run}", "training.epochs=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_file_size,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    name = "checkpoint_best.pth" if "checkpoint_best.pth" in last else "checkpoint_latest.pth"  # best goes first
    assert last == (
        f"inktrace_train: error: cannot write {run}/checkpoints/structural/{name}: File too large; "
        f"the previous {name} is intact"
    )
    assert "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in (run / "checkpoints/structural").glob("*.pth")} == before
    assert not list(run.rglob(".*.tmp*"))
    assert json.loads((run / "run.json").read_text())["stages"]["structural"]["status"] == "failed"


def test_an_unwritable_tensorboard_directory_is_one_line_and_loses_nothing(finished_run, tmp_path):
    import shutil

    run = tmp_path / "no_tb"
    shutil.copytree(finished_run / "run", run)
    shutil.rmtree(run / "tb/structural")
    (run / "tb/structural").write_text("a file where TensorBoard's directory should be")
    before = {p.name: p.read_bytes() for p in (run / "checkpoints/structural").glob("*.pth")}
    proc = run_cli([f"+resume={run}", "training.epochs=2"], cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"inktrace_train: error: cannot write TensorBoard events in {run}/tb/structural: ")
    )
    assert {p.name: p.read_bytes() for p in (run / "checkpoints/structural").glob("*.pth")} == before


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["training.auto_resume=true"]])
def test_two_starts_into_one_directory_at_once_leave_one_whole_run(tmp_path, extra):
    """The same command twice at once (a resubmitted job while the first still starts): the one
    refused deleted the directory (no checkpoint yet) and the other crashed on its missing files."""
    command = [sys.executable, "-m", "inktrace_train", *RUN, "data.train_samples=640", "hydra.run.dir=twice", *extra]
    both = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    errors = [p.communicate(timeout=300)[1].decode() for p in both]
    assert sorted(p.returncode for p in both) == [0, 2], errors
    refused = errors[[p.returncode for p in both].index(2)]
    assert "is in use by pid" in refused or "already holds a run" in refused, refused
    status = json.loads((tmp_path / "twice/run.json").read_text())
    assert status["stages"]["structural"]["status"] == "done" and saved(tmp_path / "twice")["epoch"] == 3


@pytest.mark.slow
def test_a_run_in_use_is_refused_and_a_stale_lock_is_taken_over(finished_run, tmp_path):
    import shutil

    busy = subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *RUN, "hydra.run.dir=busy"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while latest_step(tmp_path / "busy")[0] < 1 and busy.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    second = run_cli(["+resume=busy"], cwd=tmp_path)
    assert busy.wait(timeout=240) == 0
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"busy is in use by pid {busy.pid} on host " in second.stderr and "(run.lock)" in second.stderr

    stale = tmp_path / "stale"  # the lock file of a run that was killed: no process holds it any more
    shutil.copytree(finished_run / "run", stale)
    (stale / "run.lock").write_text("pid 999999 on host elsewhere since yesterday\n")
    proc = run_cli([f"+resume={stale}", "training.epochs=2"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert saved(stale)["epoch"] == 2


def test_a_run_directory_that_cannot_be_written_is_one_line(tmp_path):
    """A read-only run directory (here: a path under a file, since root writes anywhere) gave a
    traceback from the lock file's open."""
    from inktrace_train.errors import UserError
    from inktrace_train.run.rundir import RunDir

    (tmp_path / "a_file").write_text("")
    lock = RunDir(tmp_path / "a_file" / "run").lock()
    with pytest.raises(UserError, match=r"a_file/run is not writable \(Not a directory\): a run saves its checkpoints"):
        lock.__enter__()


@pytest.mark.slow
def test_a_run_killed_just_after_its_last_save_is_recorded_as_finished_on_resume(finished_run, tmp_path):
    """Its last checkpoint is written, but run.json still says running (the kill came before the
    end was recorded): resume said "finished" and left it running, for report and every later resume."""
    import shutil

    run = tmp_path / "cut"
    shutil.copytree(finished_run / "run", run)
    status = json.loads((run / "run.json").read_text())
    done = dict(status["stages"]["structural"])
    status["stages"]["structural"] = {"status": "running", "started": done["started"]}
    (run / "run.json").write_text(json.dumps(status))
    proc = run_cli([f"+resume={run}"], cwd=tmp_path)
    assert proc.returncode == 0 and "already finished" in proc.stdout, proc.stderr[-2000:]
    stage = json.loads((run / "run.json").read_text())["stages"]["structural"]
    assert stage["status"] == "done" and stage["epochs"] == done["epochs"]
    assert (
        stage["best_metric"] == pytest.approx(done["best_metric"])
        and stage["best_checkpoint"] == done["best_checkpoint"]
    )
    report = run_cli([str(tmp_path)], cwd=tmp_path, module="inktrace_train.report")
    assert report.returncode == 0 and "| cut | structural |" in report.stdout and "| done |" in report.stdout

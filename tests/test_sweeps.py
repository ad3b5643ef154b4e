"""Experiments, sweeps, sweep summaries and sweep resume, as documented commands."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers import kill_when, needs_optuna, rows, run_cli, tiny
from inktrace_train.config.schema import to_config
from inktrace_train.launch.compose import config_dir, register

register()
SMALL = tiny("data.train_samples=32", "data.val_samples=16", "training.batch_size=16")


def composed(overrides, extra_dir=None):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return to_config(compose("config", overrides=overrides))


def test_precedence_schema_group_stage_experiment_command_line():
    assert composed(["stage=structural", "experiment=baseline"]).data.train_samples == 4096  # schema
    assert composed(["data=synthetic"]).data.train_samples == 2048  # group yaml beats schema
    assert composed([]).training.epochs == 30  # stage beats schema (50)
    assert composed(["experiment=long_train"]).training.epochs == 90  # experiment beats stage
    assert composed(["experiment=long_train", "training.epochs=7"]).training.epochs == 7  # command line wins
    assert composed(["model=tiny", "experiment=large_model"]).model.embed_dim == 256  # experiment beats group


def test_every_shipped_experiment_and_what_it_builds_on():
    large = composed(["experiment=large_model"])
    assert (large.model.embed_dim, large.model.num_layers, large.model.num_heads) == (256, 6, 8)
    assert composed(["experiment=high_lr"]).training.lr == 3e-3
    ablation = composed(["experiment=ablation_no_pretrain"])
    assert ablation.stage.name == "dense" and ablation.stage.init_from is None and ablation.model.full_heads


def test_experiment_trains(workdir):
    proc = run_cli(["experiment=high_lr", *SMALL, "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = OmegaConf.load(workdir / "run/config.yaml")
    assert (cfg.training.lr, cfg.training.warmup_epochs) == (3e-3, 2.0)
    assert (workdir / "run/checkpoints/structural/checkpoint_best.pth").is_file()


def test_users_own_experiment_folder_builds_on_a_shipped_one(workdir):
    mine = workdir / "my_exps" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - large_model\ntraining:\n  lr: 0.0042\n")
    out = run_cli(["--config-dir", str(workdir / "my_exps"), "experiment=mine", "--cfg", "job"], cwd=workdir).stdout
    cfg = OmegaConf.create(out)
    assert (cfg.training.lr, cfg.model.embed_dim) == (0.0042, 256)


def test_a_run_of_your_own_experiment_folder_resumes_with_its_command_given_again(workdir):
    mine = workdir / "my_exps" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ntraining:\n  lr: 0.0042\n")
    command = ["--config-dir", str(workdir / "my_exps"), "experiment=mine", *SMALL]
    assert run_cli([*command, "hydra.run.dir=run"], cwd=workdir).returncode == 0
    again = run_cli([*command, "+resume=run"], cwd=workdir)
    assert again.returncode == 0 and "already finished" in again.stdout, again.stderr[-2000:]
    longer = run_cli([*command, "training.epochs=2", "+resume=run"], cwd=workdir)
    assert longer.returncode == 0, longer.stderr[-2000:]
    manifest = json.loads((workdir / "run/checkpoints/structural/manifest.json").read_text())
    assert manifest["files"]["checkpoint_latest.pth"]["epoch"] == 2
    refused = run_cli([*command, "training.lr=0.1", "+resume=run"], cwd=workdir)
    assert refused.returncode == 2 and "resume cannot change training.lr (0.0042 -> 0.1)" in refused.stderr
    dense = [line for line in longer.stdout.splitlines() if "dense stage:" in line]
    assert dense and f"--config-dir {workdir / 'my_exps'} experiment=mine" in dense[0]  # it runs as printed


@pytest.mark.slow
def test_multirun_three_jobs_summary_and_job_resume(workdir):
    proc = run_cli(["-m", "training.lr=1e-3,5e-4,1e-4", *SMALL, "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = workdir / "sweep"
    for job, lr in enumerate((1e-3, 5e-4, 1e-4)):
        assert OmegaConf.load(sweep / f"{job}/config.yaml").training.lr == lr
        assert (sweep / f"{job}/checkpoints/structural/checkpoint_best.pth").is_file()
    table = rows(sweep)
    assert len(table) == 3 and {r["status"] for r in table} == {"done"}
    metrics = [float(r["metric"]) for r in table]
    assert metrics == sorted(metrics, reverse=True)
    assert "training.lr=0.0005" in (sweep / "summary.md").read_text()
    record = (sweep / "1/job.json").read_bytes()
    again = run_cli(["+resume=sweep/1"], cwd=workdir)  # each job is a run of its own
    assert again.returncode == 0 and "already finished" in again.stdout
    assert (sweep / "1/job.json").read_bytes() == record  # nothing trained: its record as it was
    longer = run_cli(["+resume=sweep/1", "training.epochs=2"], cwd=workdir)  # ...and its record follows
    assert longer.returncode == 0, longer.stderr[-2000:]
    record = json.loads((sweep / "1/job.json").read_text())
    assert record["status"] == "done" and "training.epochs=2" in record["overrides"]
    assert "training.epochs=1" not in record["overrides"] and "training.lr=0.0005" in record["overrides"]
    best = json.loads((sweep / "1/run.json").read_text())["stages"]["structural"]["best_metric"]
    assert record["metric"] == best
    summary = {r["run"]: r for r in rows(sweep)}
    assert "training.epochs=2" in summary["1"]["overrides"] and float(summary["1"]["metric"]) == pytest.approx(best)
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    twice = run_cli(["-m", "training.lr=1e-3,5e-4,1e-4", *SMALL, "hydra.sweep.dir=sweep"], cwd=workdir)
    assert (
        twice.returncode == 2 and "sweep already holds a sweep: re-run its command with +resume=sweep" in twice.stderr
    )
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
    # A job whose settings now differ from those it trained with (a re-proposed Optuna trial, say)
    # is refused by name, not resumed with its old settings under the new record.
    job1 = OmegaConf.load(sweep / "1/config.yaml")
    job1.training.lr = 0.123
    OmegaConf.save(job1, sweep / "1/config.yaml")
    (sweep / "1/job.json").unlink()
    differs = run_cli(["+resume=sweep"], cwd=workdir)
    assert (
        differs.returncode == 1
        and "resume cannot change training.lr (0.123 -> 0.0005)" in differs.stdout + differs.stderr
    )
    assert json.loads((sweep / "1/job.json").read_text())["status"] == "failed"
    job1.training.lr = 0.0005
    OmegaConf.save(job1, sweep / "1/config.yaml")
    (sweep / "2/job.json").write_text('{"job": 2, "overr')  # torn by a kill as it was written
    torn = run_cli(["+resume=sweep"], cwd=workdir)
    assert torn.returncode == 0 and "already finished" in torn.stdout, torn.stderr[-2000:]
    assert json.loads((sweep / "2/job.json").read_text())["status"] == "done"  # written again from its run
    assert {r["status"] for r in rows(sweep)} == {"done"}  # job 1 too: its settings are its own again


@pytest.mark.slow
def test_a_finished_sweep_resumed_with_more_epochs_extends_every_job(workdir):
    proc = run_cli(["-m", "training.lr=1e-3,5e-4", *SMALL, "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {job: json.loads((workdir / f"sweep/{job}/job.json").read_text()) for job in (0, 1)}

    before = {p: p.read_bytes() for p in (workdir / "sweep").rglob("*") if p.is_file()}
    refused = run_cli(["+resume=sweep", "training.lr=1e-2"], cwd=workdir)  # a change resume refuses
    assert refused.returncode == 2 and "resume cannot change training.lr (0.001 -> 0.01)" in refused.stderr
    assert {p: p.read_bytes() for p in (workdir / "sweep").rglob("*") if p.is_file()} == before  # its record too

    extended = run_cli(["+resume=sweep", "training.epochs=2"], cwd=workdir)
    assert extended.returncode == 0, extended.stderr[-2000:]
    assert "is done" not in extended.stdout  # not skipped: each job has an epoch to train
    for job, lr in enumerate((1e-3, 5e-4)):
        status = json.loads((workdir / f"sweep/{job}/run.json").read_text())
        assert status["resumes"][-1]["changes"] == {"training.epochs": 2}
        manifest = json.loads((workdir / f"sweep/{job}/checkpoints/structural/manifest.json").read_text())
        assert manifest["files"]["checkpoint_latest.pth"]["epoch"] == 2
        assert OmegaConf.load(workdir / f"sweep/{job}/config.yaml").training.lr == lr  # its own axis value
        assert json.loads((workdir / f"sweep/{job}/job.json").read_text())["ended"] > records[job]["ended"]
    launches = sorted(str(p) for p in (workdir / "sweep").glob("*/.hydra/resume-*"))
    again = run_cli(["+resume=sweep", "training.epochs=2"], cwd=workdir)
    assert again.returncode == 0 and again.stdout.count("is done") == 2  # nothing left: skipped
    assert sorted(str(p) for p in (workdir / "sweep").glob("*/.hydra/resume-*")) == launches  # no record of it
    # The original command again with -m (as "already holds a sweep" advises) changes nothing:
    # its training.epochs=1 does not cut the extended jobs back.
    original = run_cli(["-m", "training.lr=1e-3,5e-4", *SMALL, "hydra.sweep.dir=sweep", "+resume=sweep"], cwd=workdir)
    assert original.returncode == 0 and original.stdout.count("is done") == 2, original.stderr[-2000:]
    for job in (0, 1):
        manifest = json.loads((workdir / f"sweep/{job}/checkpoints/structural/manifest.json").read_text())
        assert manifest["files"]["checkpoint_latest.pth"]["epoch"] == 2


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_the_others_finish(workdir):
    proc = run_cli(["-m", "training.lr=1e-3,-1,5e-4", *SMALL, "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 1 and "1 of 3 sweep jobs failed" in proc.stderr
    table = {r["run"]: r for r in rows(workdir / "sweep")}
    assert table["1"]["status"] == "failed" and "training.lr=-1.0 is out of range" in table["1"]["error"]
    assert table["0"]["status"] == table["2"]["status"] == "done"
    assert "failed" in (workdir / "sweep/summary.md").read_text()


@pytest.mark.slow
def test_sweep_preset_killed_and_resumed_skips_finished_jobs(workdir):
    args = ["sweep=lr", *SMALL, "training.epochs=2", "hydra.sweep.dir=sw"]
    kill_when(args, workdir, (workdir / "sw/1/checkpoints/structural/checkpoint_latest.pth").exists)
    assert json.loads((workdir / "sw/0/job.json").read_text())["status"] == "done"
    assert not (workdir / "sw/2/job.json").exists()
    original = (workdir / "sw/1/.hydra/overrides.yaml").read_text()

    resumed = run_cli(args + ["+resume=sw"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "job 0 is done" in resumed.stdout
    table = rows(workdir / "sw")
    assert len(table) == 3 and {r["status"] for r in table} == {"done"}
    assert json.loads((workdir / "sw/1/run.json").read_text())["resumes"], "job 1 was resumed, not restarted"
    assert (workdir / "sw/1/.hydra/overrides.yaml").read_text() == original
    assert list((workdir / "sw/1/.hydra").glob("resume-*/overrides.yaml"))


def test_report_ranks_within_each_stage_and_skips_stray_files(workdir):
    """Run records as runs leave them (run.json per run; real runs make them in the sweep tests)."""
    for name, stage, metric in (("a", "dense", 0.9), ("b", "structural", 0.5), ("c", "structural", 0.7)):
        (workdir / "runs" / name).mkdir(parents=True)
        record = {"pipeline": [stage], "stages": {stage: {"status": "done", "best_metric": metric}}}
        (workdir / "runs" / name / "run.json").write_text(json.dumps(record))
    (workdir / "runs/stray").mkdir()
    (workdir / "runs/stray/run.json").write_text("not a run record")
    proc = run_cli(["runs"], cwd=workdir, module="inktrace_train.report")
    assert proc.returncode == 0 and "3 of 3 runs done" in proc.stdout
    table = rows(workdir / "runs")
    # metrics of one kind together, best first: a dense composite of 0.9 does not outrank structural F1s
    assert [(r["run"], r["stage"]) for r in table] == [("c", "structural"), ("b", "structural"), ("a", "dense")]
    stopped = workdir / "runs/d"  # stopped by Ctrl-C in its first stage: its best so far, from the manifest
    (stopped / "checkpoints/structural").mkdir(parents=True)
    record = {"pipeline": ["structural"], "stages": {"structural": {"status": "interrupted"}}}
    (stopped / "run.json").write_text(json.dumps(record))
    (stopped / "checkpoints/structural/manifest.json").write_text(json.dumps({"files": {}, "best_metric": 0.8533}))
    run_cli(["runs"], cwd=workdir, module="inktrace_train.report")
    (row,) = [r for r in rows(workdir / "runs") if r["run"] == "d"]
    assert row["status"] == "interrupted" and float(row["metric"]) == 0.8533
    missing = run_cli(["nowhere"], cwd=workdir, module="inktrace_train.report")
    assert missing.returncode == 2 and "report: no such directory: nowhere" in missing.stderr


@pytest.mark.slow
@needs_optuna
def test_optuna_preset_runs_three_trials(workdir):
    proc = run_cli(["sweep=optuna", "hydra.sweeper.n_trials=3", *SMALL, "hydra.sweep.dir=opt"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(rows(workdir / "opt")) == 3
    assert "best_value" in (workdir / "opt/optimization_results.yaml").read_text()


@pytest.mark.slow
@needs_optuna
def test_an_optuna_sweep_stopped_mid_trial_resumes_with_the_command_it_prints(workdir):
    """The Optuna sweeper writes no multirun.yaml, so +resume= of its directory said it 'holds 2
    runs'; a job stopped by Ctrl-C was recorded as preempted. The sampler is seeded: the resumed
    sweep proposes the same trials, skips the done one and continues the stopped one."""
    import signal
    import subprocess
    import sys
    import time

    args = ["sweep=optuna", "hydra.sweeper.n_trials=3", *SMALL, "training.epochs=2", "hydra.sweep.dir=opt"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *args], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    saved = workdir / "opt/1/checkpoints/structural/checkpoint_latest.pth"  # in its second epoch
    while not saved.is_file() and sweep.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    sweep.send_signal(signal.SIGINT)  # Ctrl-C: recorded as interrupted, as the job's run.json says
    _, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 130, err.decode()[-2000:]
    assert json.loads((workdir / "opt/1/job.json").read_text())["status"] == "interrupted"
    assert json.loads((workdir / "opt/1/run.json").read_text())["stages"]["structural"]["status"] == "interrupted"
    (command,) = [ln.split("Continue with: ")[1] for ln in err.decode().splitlines() if "Continue with: " in ln]
    proposed = [o for o in json.loads((workdir / "opt/1/job.json").read_text())["overrides"] if "training.lr" in o]
    resumed = run_cli(command.split()[3:], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "job 0 is done" in resumed.stdout
    # Proposed again as it was (a different proposal would be refused: the job's settings are checked).
    assert [
        o for o in json.loads((workdir / "opt/1/job.json").read_text())["overrides"] if "training.lr" in o
    ] == proposed
    assert [r["status"] for r in rows(workdir / "opt")] == ["done"] * 3

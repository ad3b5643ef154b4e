"""The Trainer and the pipeline in-process, on a tiny model with a 3-batch loader: accumulation,
the partial-accumulation step at epoch end, the is-best decision across a resume, fp16 loss
scaling, and the resume plan and run_pipeline on a temporary run directory."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from inktrace_train.checkpoint.store import CheckpointError, load_checkpoint
from inktrace_train.config.schema import Config, DataConfig, ModelConfig, StageConfig, TrainingConfig
from inktrace_train.run.ranks import Ranks
from inktrace_train.run.rundir import RunDir
from inktrace_train.run.stagefiles import newest_valid
from inktrace_train.train.build import build_trainer
from inktrace_train.train.distributed import Distributed
from inktrace_train.train.pipeline import run_pipeline, run_stage

CPU = Distributed(Ranks(), torch.device("cpu"))  # this process alone
# spy_on_steps replaces optimizer.step after the scheduler wrapped it; torch warns about that, harmlessly.
pytestmark = pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")


def tiny_config(stage: str = "structural", **training) -> Config:
    """Tiny model, synthetic strokes, 3 micro-batches of 4 per epoch, 4 validation images."""
    model = ModelConfig(
        embed_dim=32,
        num_layers=1,
        num_heads=2,
        stem_channels=[8, 16, 32],
        decoder_channels=[32, 16, 8],
        full_heads=stage == "dense",
    )
    t = TrainingConfig(**{"batch_size": 4, "epochs": 1, "grad_clip": 0.0, **training})
    data = DataConfig(source="synthetic", train_samples=12, val_samples=4, num_workers=0)
    return Config(model=model, stage=StageConfig(name=stage), training=t, data=data)


def spy_on_steps(trainer) -> list:
    """Record every parameter's gradient each time the optimizer steps."""
    recorded, step = [], trainer.optimizer.step

    def recording_step(*args, **kwargs):
        recorded.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    return recorded


def test_accumulation_sums_micro_batches_and_steps_again_for_a_partial_group(tmp_path):
    trainer = build_trainer(tiny_config(grad_accum_steps=2), RunDir(tmp_path), CPU)
    batches = list(trainer.train_loader)  # epoch 0: the very batches fit() will see
    assert len(batches) == trainer.steps_per_epoch == 3
    reference = copy.deepcopy(trainer.model)
    for batch in batches[:2]:  # the first optimizer step: micro-batches 1 and 2, each loss / 2
        (trainer.loss_fn(reference(batch["image"]), batch)["total"] / 2).backward()
    recorded = spy_on_steps(trainer)

    trainer.fit()
    assert len(recorded) == 2 and trainer.state.global_step == 2  # 2 full micro-batches + 1 partial
    assert trainer.scheduler.last_epoch == 2
    for name, p in reference.named_parameters():
        torch.testing.assert_close(recorded[0][name], p.grad, rtol=1e-6, atol=0, msg=name)


def test_without_accumulation_every_micro_batch_steps(tmp_path):
    trainer = build_trainer(tiny_config(grad_accum_steps=1), RunDir(tmp_path), CPU)
    recorded = spy_on_steps(trainer)
    trainer.fit()
    assert len(recorded) == trainer.state.global_step == 3


def end_epoch(trainer, metric: float) -> None:
    trainer.state.epoch += 1
    trainer.end_epoch({"x": metric})
    trainer.wait_for_saves()  # checkpoints are written in the background


def test_is_best_comes_from_the_training_state_even_when_the_manifest_is_unreadable(tmp_path):
    run = RunDir(tmp_path)
    trainer = build_trainer(tiny_config(), run, CPU)
    trainer.select_metric = lambda m: m["x"]
    end_epoch(trainer, 0.5)
    directory = run.checkpoint_dir("structural")
    (directory / "manifest.json").write_text("{ not json")  # the record is lost; the decision must not be

    ckpt = load_checkpoint(newest_valid(directory))  # what a resume loads
    resumed = build_trainer(tiny_config(), run, CPU, ckpt)
    resumed.select_metric = lambda m: m["x"]
    assert resumed.state.best_metric == 0.5
    end_epoch(resumed, 0.4)
    assert load_checkpoint(run.best_checkpoint("structural")).metric == 0.5
    assert load_checkpoint(directory / "checkpoint_latest.pth").best_metric == 0.5
    end_epoch(resumed, math.nan)  # a NaN metric is never the best
    assert load_checkpoint(run.best_checkpoint("structural")).metric == 0.5
    end_epoch(resumed, 0.6)
    assert load_checkpoint(run.best_checkpoint("structural")).metric == 0.6


def cpu_fp16_autocast_works() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not cpu_fp16_autocast_works(), reason="this torch build has no fp16 autocast on CPU")
def test_fp16_loss_scaling_trains_saves_and_resumes_the_scaler(tmp_path):
    run = RunDir(tmp_path)
    cfg = tiny_config(precision="fp16", device="cpu")
    trainer = build_trainer(cfg, run, CPU)
    assert trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    ckpt = load_checkpoint(run.checkpoint_dir("structural") / "checkpoint_latest.pth")
    assert ckpt.scaler_state_dict is not None and ckpt.scaler_state_dict["scale"] == trainer.scaler.get_scale()
    resumed = build_trainer(replace(cfg, training=replace(cfg.training, epochs=2)), run, CPU, ckpt)
    assert resumed.scaler.get_scale() == trainer.scaler.get_scale()


# --- the pipeline on a temporary run directory -----------------------------------------------
def pipeline(tmp_path: Path, dense_epochs: int = 1) -> tuple[RunDir, list]:
    stages = [tiny_config("structural"), tiny_config("dense", epochs=dense_epochs)]
    run = RunDir(tmp_path / "run")
    run.create(stages[0], stages)
    return run, stages


def plan(run: RunDir, *overrides: str):
    """What ``+resume=RUN OVERRIDES`` would do (the plan, decided without torch)."""
    from inktrace_train.launch import resume
    from inktrace_train.launch.compose import compose_plain, register

    register()  # the config schema, as the entry point registers it
    return resume.plan(str(run.path), list(overrides), compose=compose_plain, read_checkpoint=None)


def test_the_plan_before_any_checkpoint_starts_over_and_refuses_only_bad_files(tmp_path):
    run, _ = pipeline(tmp_path)
    first = plan(run)
    assert (first.start, first.checkpoint) == ("structural", None)  # killed before its first save
    (run.checkpoint_dir("structural") / "checkpoint_latest.pth").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match=r"no valid checkpoint in .*structural"):
        plan(run)


def test_a_run_resumes_in_its_own_directory_and_says_so_of_hydra_run_dir(tmp_path, caplog):
    run, _ = pipeline(tmp_path)
    with caplog.at_level(logging.WARNING):
        resumed = plan(run, "hydra.run.dir=elsewhere")
    assert resumed.run.path == run.path and resumed.new_dir is None
    assert f"hydra.run.dir=elsewhere is not used: a run resumes in its own directory, {run.path}" in caplog.text


def test_run_pipeline_skips_done_stages_and_starts_dense_from_structural_best(tmp_path):
    run, stages = pipeline(tmp_path)
    run_stage(stages[0], run, CPU)
    after_structural = plan(run)
    assert (after_structural.start, after_structural.checkpoint) == ("dense", None)  # killed before dense's first save

    structural_best = load_checkpoint(run.best_checkpoint("structural")).model_state_dict
    run_pipeline(run, stages, CPU)
    status = run.status()["stages"]
    assert status["structural"]["status"] == status["dense"]["status"] == "done"
    assert str(run.best_checkpoint("structural")) in run.init_report("dense").read_text()
    assert plan(run).start is None  # finished

    dense = load_checkpoint(run.checkpoint_dir("dense") / "checkpoint_latest.pth")
    assert dense.stage == "dense" and not torch.equal(
        dense.model_state_dict["stem.0.0.weight"], structural_best["stem.0.0.weight"]
    )
    longer = plan(run, "training.epochs=2")  # a resume extended both stages: both are unfinished again
    assert longer.start == "structural" and longer.changes == {"training.epochs": 2}
    latest = {stage: run.checkpoint_dir(stage) / "checkpoint_latest.pth" for stage in ("structural", "dense")}
    assert longer.checkpoints == latest  # dense continues from its own newest file, not from structural's best


def test_hparams_of_a_stage_that_never_improved(tmp_path):
    """Every validation metric NaN: no best exists, and the HParams record must still be written."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from inktrace_train.train.logger import RunLogger

    logger = RunLogger(tmp_path / "tb", "structural", progress=False)
    logger.hparams(
        {"training.lr": 1e-3, "stage.pipeline": ["structural", "dense"]},
        {"best_metric": None, "skeleton_f1_1px": math.nan},
    )
    logger.close()
    assert "_hparams_/session_start_info" in EventAccumulator(str(tmp_path / "tb")).Reload().PluginTagToContent(
        "hparams"
    )


def test_a_non_finite_loss_stops_the_stage_before_any_checkpoint_holds_it(tmp_path):
    """Epoch 1 trains and saves; the first micro-batch of epoch 2 gives NaN: the stage stops naming
    that step and the term, and checkpoint_latest.pth keeps epoch 1's finite weights."""
    from inktrace_train.train.trainer import NonFiniteLoss

    run = RunDir(tmp_path)
    trainer = build_trainer(tiny_config(epochs=2), run, CPU)
    loss_fn, calls = trainer.loss_fn, []

    def poisoned(outputs, batch):
        losses = loss_fn(outputs, batch)
        calls.extend([1] if trainer.module.training else [])
        if len(calls) == 4 and trainer.module.training:  # the 4th training micro-batch: epoch 2, step 4
            losses["tangent"] = losses["tangent"] * math.nan
            losses["total"] = losses["total"] + losses["tangent"]
        return losses

    trainer.loss_fn = poisoned
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss \(tangent, total\) at optimizer step 4 of stage"):
        trainer.fit()
    latest = load_checkpoint(run.checkpoint_dir("structural") / "checkpoint_latest.pth")
    assert latest.epoch == 1 and latest.global_step == 3
    assert all(torch.isfinite(v).all() for v in latest.model_state_dict.values() if v.is_floating_point())


def test_a_failed_background_write_is_raised_at_the_next_save_never_lost(tmp_path, monkeypatch):
    """Saves run in a background thread; the write's failure surfaces at the next save or at the
    end of the stage, and the files written before it stay intact."""
    import errno

    from inktrace_train.checkpoint import store as ckpt_module
    from inktrace_train.run.atomic import WriteError

    run = RunDir(tmp_path)
    trainer = build_trainer(tiny_config(), run, CPU)
    trainer.select_metric = lambda m: m["x"]
    end_epoch(trainer, 0.5)
    latest = run.checkpoint_dir("structural") / "checkpoint_latest.pth"
    before = latest.read_bytes()

    def full(path, write):
        raise WriteError(f"cannot write {path}: {errno.errorcode[errno.ENOSPC]}")

    monkeypatch.setattr(ckpt_module, "write_temp", full)
    trainer.state.epoch += 1
    trainer.end_epoch({"x": 0.6})  # returns at once: the write fails in the background
    with pytest.raises(WriteError, match="ENOSPC"):
        trainer.save(0.6, is_best=False)
    trainer.end_epoch({"x": 0.7})
    with pytest.raises(WriteError):
        trainer.close()
    assert latest.read_bytes() == before


def test_a_background_write_holds_the_state_of_its_step(tmp_path):
    """The snapshot is taken when the save is asked for: training on while it is written does not
    leak into the file."""
    run = RunDir(tmp_path)
    trainer = build_trainer(tiny_config(), run, CPU)
    trainer.select_metric = lambda m: m["x"]
    trainer.state.epoch += 1
    expected = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    trainer.end_epoch({"x": 0.5})
    with torch.no_grad():
        for p in trainer.module.parameters():
            p.add_(1.0)  # training goes on while the file is written
    trainer.wait_for_saves()
    saved = load_checkpoint(run.checkpoint_dir("structural") / "checkpoint_latest.pth").model_state_dict
    assert all(torch.equal(saved[k], v) for k, v in expected.items())


def test_step_log_means_and_the_first_non_finite_row_in_one_read():
    from inktrace_train.train.steplog import StepLog

    log = StepLog()
    for i in range(5):
        values = {"a": torch.tensor(float(i)), "total": torch.tensor(1.0)}
        log.add(values)
    means, bad = log.read(check=True)
    assert means == {"a": 2.0, "total": 1.0} and bad is None and not log
    doubled = StepLog(reduce=lambda t: t * 2)  # a sum over 2 ranks holding the same rows
    for a in (1.0, math.inf, math.nan):
        doubled.add({"a": torch.tensor(a), "total": torch.tensor(1.0)})
    means, bad = doubled.read(world=2, check=True)
    assert bad == (2, ["a"]) and means["total"] == 1.0
    log.add({"a": torch.tensor(1.0), "total": torch.tensor(math.nan)})
    assert log.nonfinite() == (1, ["total"])
    assert log.read(check=True)[1] is None  # rows already checked are not reported twice
    norms = StepLog(["grad_norm"], reduce=lambda t: t * 2)
    for n in (1.0, 2.0, 6.0):
        norms.add(torch.tensor(n))
    assert norms.read_uneven() == {"grad_norm": 3.0}  # sums and counts both doubled
    mixed = StepLog()  # terms as a loss under autocast hands them: some in autograd, some bf16
    weight = torch.tensor(2.0, requires_grad=True)
    mixed.add({"a": weight * 3, "b": torch.tensor(0.5, dtype=torch.bfloat16), "total": weight * 3 + 0.5})
    mixed.add({"a": weight * 1, "b": torch.tensor(1.5, dtype=torch.bfloat16), "total": weight * 1 + 1.5})
    assert mixed.read(check=True) == ({"a": 4.0, "b": 1.0, "total": 5.0}, None)


def test_a_worker_death_is_reported_by_the_next_batch_not_mid_step():
    """PyTorch's SIGCHLD handler would raise a worker's death at any line of the main thread
    (inside the forward, inside a file write); once a multi-worker stream starts, the default
    action is back and the loader reports the death from next()."""
    import signal

    from torch.utils.data import DataLoader

    from inktrace_train.train.trainer import batches

    loader = DataLoader(list(range(4)), batch_size=2, num_workers=1)
    stream = batches(loader)
    assert next(stream).tolist() == [0, 1]
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    stream.close()


class _BrokenStream:
    """A loader whose second batch fails to arrive as ``error`` (what next() raised)."""

    def __init__(self, error: BaseException):
        self.error = error

    def __iter__(self):
        yield torch.zeros(1)
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly"),
        ConnectionResetError(104, "Connection reset by peer"),  # killed while it handed a batch's memory over
        EOFError(),
    ],
)
def test_a_worker_death_surfaces_as_worker_lost_however_the_loader_reports_it(error):
    """The loader names a dead worker only if the process is already reaped; a worker killed
    while the main process receives its batch breaks the connection that hands the batch's
    shared memory over instead. Either way the trainer must see a lost worker (save, one line),
    not a crash with a traceback."""
    from inktrace_train.train.trainer import WorkerLost, batches

    stream = batches(_BrokenStream(error))
    next(stream)
    with pytest.raises(WorkerLost):
        next(stream)


def test_an_error_of_the_dataset_in_a_worker_is_not_a_lost_worker():
    """The loader re-raises a worker's own exception with where it was caught: a bug to show,
    not a death to save and resume from."""
    from inktrace_train.train.trainer import WorkerLost, batches

    error = RuntimeError("Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback ...")
    stream = batches(_BrokenStream(error))
    next(stream)
    with pytest.raises(RuntimeError, match="Caught RuntimeError") as raised:
        next(stream)
    assert not isinstance(raised.value, WorkerLost)


LEAKED_STREAM = """
import sys
from torch.utils.data import DataLoader
from inktrace_train.data.dataset import worker_init_fn
from inktrace_train.train.trainer import batches

loader = DataLoader(list(range(64)), batch_size=2, num_workers=2, persistent_workers=True,
                    worker_init_fn=worker_init_fn)
stream = batches(loader)
next(stream)
sys.exit(3)  # the stream, and its workers, still alive at exit (as an error's traceback keeps them)
"""


def test_workers_still_running_at_exit_do_not_hang_the_process(tmp_path):
    """The workers ignore SIGTERM (a signal to the process group is the main process's to
    handle), and SIGTERM, then a join without a timeout, is how multiprocessing ends daemonic
    children at exit: a loader iterator an error's traceback kept alive hung the run forever
    after its last line (a worker killed mid-batch, in CI). Now the process exits."""
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", LEAKED_STREAM], cwd=tmp_path, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the process hung at exit with its data-loader workers alive")
    assert proc.returncode == 3, err[-2000:]

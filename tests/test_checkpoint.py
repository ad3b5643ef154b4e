"""Checkpoint format, atomic writes, rotation, verification and refusal of unsafe files."""

from __future__ import annotations

import json
import logging
import os
import pickle
import random

import pytest
import torch

from inktrace_train.checkpoint import store as ckpt_module
from inktrace_train.checkpoint.store import Checkpoint, CheckpointError, CheckpointManager, load_checkpoint
from inktrace_train.run.rundir import BEST, LATEST, periodic_name
from inktrace_train.run.stagefiles import newest_valid


def resumed(directory):
    """What a resume loads from a stage's checkpoint folder (launch/resume.py's rule)."""
    return load_checkpoint(newest_valid(directory))


def state(epoch: int, metric: float, step_in_epoch: int = 0) -> Checkpoint:
    return Checkpoint.from_dict(
        {
            "version": 1,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": epoch * 10,
            "metric": metric,
            "model_state_dict": {"w": torch.full((3,), float(epoch))},
        }
    )


def test_files_manifest_and_weights_only_load(tmp_path):
    m = CheckpointManager(tmp_path, keep_last_n=2, save_interval=2)
    for epoch, metric in enumerate([0.1, 0.3, 0.2, 0.4], start=1):
        m.save(state(epoch, metric), is_best=metric == max([0.1, 0.3, 0.2, 0.4][:epoch]))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([LATEST, BEST, periodic_name(2), periodic_name(4), "manifest.json"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["best_metric"] == 0.4 and manifest["periodic"] == [periodic_name(2), periodic_name(4)]
    for name in (LATEST, BEST):
        assert m.verify(name) is None
        assert torch.load(tmp_path / name, weights_only=True)["epoch"] == 4


def test_a_kill_while_writing_best_leaves_the_previous_latest(tmp_path, monkeypatch):
    """Latest is written last: a kill before it leaves the previous latest, so a resume replays
    the epoch and writes best again (written first, latest could name a best no file holds)."""
    m = CheckpointManager(tmp_path, keep_last_n=3, save_interval=1)
    m.save(state(1, 0.5), is_best=True)
    real_commit = ckpt_module.commit

    def killed_at(name):
        def commit(tmp, path):
            if path.name == name:
                raise KeyboardInterrupt
            real_commit(tmp, path)

        return commit

    for name in (BEST, periodic_name(2), LATEST):
        monkeypatch.setattr(ckpt_module, "commit", killed_at(name))
        with pytest.raises(KeyboardInterrupt):
            CheckpointManager(tmp_path, keep_last_n=3, save_interval=1).save(state(2, 0.6), is_best=True)
        assert resumed(tmp_path).epoch == 1


def test_the_run_lock_holder_removes_temp_files_of_killed_processes(tmp_path):
    from inktrace_train.run.rundir import RunDir

    stage = tmp_path / "checkpoints/structural"
    stage.mkdir(parents=True)
    stale = [stage / ".checkpoint_latest.pth.tmp999999", tmp_path / ".run.json.tmp999998"]
    for p in stale:
        p.write_bytes(b"torn")
    keep = stage / "notes.tmp1"  # not a name our writes use
    keep.write_text("mine")
    with RunDir(tmp_path).lock():
        assert not any(p.exists() for p in stale) and keep.exists()


def test_crash_between_temp_write_and_replace_keeps_previous_latest(tmp_path, monkeypatch):
    m = CheckpointManager(tmp_path, keep_last_n=3, save_interval=100)
    m.save(state(1, 0.5), is_best=True)

    def killed(tmp, path):  # the process dies after the temp file is written, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        m.save(state(2, 0.6), is_best=True)
    monkeypatch.undo()
    reopened = CheckpointManager(tmp_path, keep_last_n=3, save_interval=100)
    assert reopened.verify(LATEST) is None  # the manifest still accepts the old file
    assert resumed(tmp_path).epoch == 1


@pytest.mark.parametrize("seed", range(20))
def test_rotation_never_deletes_best_or_latest_across_resumes(tmp_path, seed):
    rng = random.Random(seed)
    keep, interval = rng.randint(1, 3), rng.randint(1, 3)
    m = CheckpointManager(tmp_path, keep_last_n=keep, save_interval=interval)
    best = None
    for epoch in range(1, rng.randint(2, 15)):
        if rng.random() < 0.3:  # a resume: a new manager reads the manifest
            m = CheckpointManager(tmp_path, keep_last_n=keep, save_interval=interval)
        metric = rng.random()
        is_best = best is None or metric > best
        best = metric if is_best else best
        m.save(state(epoch, metric), is_best=is_best)
        assert load_checkpoint(tmp_path / LATEST).epoch == epoch
        assert load_checkpoint(tmp_path / BEST).metric == best
        expected = [periodic_name(e) for e in range(1, epoch + 1) if e % interval == 0][-keep:]
        assert sorted(p.name for p in tmp_path.glob("checkpoint_epoch_*.pth")) == expected


def test_corrupt_latest_falls_back_with_a_warning(tmp_path, caplog):
    m = CheckpointManager(tmp_path, keep_last_n=3, save_interval=1)
    for epoch in (1, 2):
        m.save(state(epoch, 0.1 * epoch), is_best=True)
    data = bytearray((tmp_path / LATEST).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / LATEST).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        restored = resumed(tmp_path)
    assert restored.epoch == 2 and restored.global_step == 20  # checkpoint_epoch_0002.pth
    assert "checkpoint_latest.pth is corrupt" in caplog.text


def test_a_damaged_latest_before_the_first_periodic_file_resumes_from_best(tmp_path, caplog):
    """A run shorter than save_interval has only latest and best: best is a whole state too."""
    m = CheckpointManager(tmp_path, keep_last_n=3, save_interval=5)
    m.save(state(1, 0.5), is_best=True)
    m.save(state(2, 0.4), is_best=False)
    data = bytearray((tmp_path / LATEST).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / LATEST).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        restored = resumed(tmp_path)
    assert restored.epoch == 1 and restored.metric == 0.5
    assert "checkpoint_latest.pth is corrupt" in caplog.text
    (tmp_path / "manifest.json").unlink()  # without the record, the seals still tell
    assert resumed(tmp_path).epoch == 1


def test_the_fallback_takes_the_newest_of_best_and_the_periodic_files(tmp_path):
    m = CheckpointManager(tmp_path, keep_last_n=3, save_interval=2)
    for epoch, metric in enumerate([0.1, 0.2, 0.5, 0.3], start=1):  # best at 3, periodic at 2 and 4
        m.save(state(epoch, metric), is_best=metric == 0.5 or epoch < 3)
    (tmp_path / LATEST).write_bytes((tmp_path / LATEST).read_bytes()[:100])
    assert resumed(tmp_path).epoch == 4  # periodic 4 is newer than best
    os.remove(tmp_path / periodic_name(4))
    assert resumed(tmp_path).epoch == 3  # best 3 is newer than periodic 2


def test_truncated_file_is_reported_by_name(tmp_path):
    m = CheckpointManager(tmp_path, keep_last_n=3, save_interval=100)
    m.save(state(1, 0.1), is_best=True)
    for name in (LATEST, BEST):
        with open(tmp_path / name, "r+b") as f:
            f.truncate(100)
    with pytest.raises(CheckpointError, match=r"checkpoint_latest.pth is truncated.*checkpoint_best.pth is truncated"):
        resumed(tmp_path)
    with pytest.raises(CheckpointError, match=r"cannot load checkpoint .*checkpoint_latest.pth"):
        load_checkpoint(tmp_path / LATEST)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"version": 1, "model_state_dict": _Exploit(marker)}, f)
    with pytest.raises(CheckpointError, match="refused, since loading it could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_newer_format_is_refused_by_name(tmp_path):
    torch.save({"version": 99, "model_state_dict": {}}, tmp_path / "future.pth")
    with pytest.raises(CheckpointError, match=r"future.pth has checkpoint format version 99"):
        load_checkpoint(tmp_path / "future.pth")


@pytest.mark.parametrize("target", ["manifest.json", "run.json", "checkpoint_best.pth"])
def test_a_full_disk_at_any_write_keeps_the_previous_file_and_names_it(tmp_path, monkeypatch, target):
    """ENOSPC injected at the fsync of one file (checkpoint, manifest or run.json): one WriteError
    naming the file and the cause; the previous file is intact and no temp file is left."""
    import errno

    from inktrace_train.run import atomic
    from inktrace_train.run.atomic import WriteError
    from inktrace_train.run.rundir import RunDir

    run = RunDir(tmp_path)
    run.status_file.write_text(json.dumps({"stages": {}, "resumes": []}))
    m = CheckpointManager(run.checkpoint_dir("structural"), keep_last_n=3, save_interval=1)
    m.save(state(1, 0.5), is_best=True)
    real_fsync = os.fsync

    def fsync(fd):
        if target in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    path = tmp_path / target if target == "run.json" else m.directory / target
    before = path.read_bytes()
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(WriteError) as failed:
        if target == "run.json":
            run.update_stage("structural", status="done")
        else:
            m.save(state(2, 0.6), is_best=True)
    assert str(failed.value) == f"cannot write {path}: No space left on device; the previous {target} is intact"
    assert path.read_bytes() == before
    assert not list(tmp_path.rglob(".*.tmp*"))

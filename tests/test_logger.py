"""RunLogger: a TensorBoard write that fails (disk full, directory gone, the event writer process
killed) is one WriteError naming the directory and the cause, raised at the next flush or close:
never swallowed."""

from __future__ import annotations

import errno
import os
import pickle
import re
import threading

import pytest
from tensorboard.summary.writer.record_writer import RecordWriter

from inktrace_train.run.atomic import WriteError
from inktrace_train.run.signals import STOP_SIGNALS
from inktrace_train.train import eventwriter
from inktrace_train.train.eventwriter import serve
from inktrace_train.train.logger import RunLogger


def test_a_full_disk_under_tensorboard_is_the_reply_to_the_next_flush(tmp_path, monkeypatch):
    """The writer (here in a thread, as the child process runs it) keeps the first failure of
    TensorBoard's own event-file thread and answers the directory's next flush with it, then
    skips its writes; another directory goes on."""
    inbox, sender = (os.fdopen(fd, mode) for fd, mode in zip(os.pipe(), ("rb", "wb"), strict=True))
    receiver, outbox = (os.fdopen(fd, mode) for fd, mode in zip(os.pipe(), ("rb", "wb"), strict=True))
    server = threading.Thread(target=serve, args=(inbox, outbox), daemon=True)
    server.start()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def send(*message):
        pickle.dump(message, sender)
        sender.flush()

    monkeypatch.setattr(RecordWriter, "write", full)
    monkeypatch.setattr(threading, "excepthook", eventwriter._quiet_writer_threads)  # as the child does
    send("open", 0, str(tmp_path / "full"), None)
    for step in range(200):
        send("scalars", 0, [("structural/train/total", 1.0, step, 0.0)])
    send("flush", 0, 7)
    assert pickle.load(receiver) == (7, "No space left on device")
    monkeypatch.undo()  # the disk has room again: another directory is written as usual
    send("open", 1, str(tmp_path / "fine"), None)
    send("scalars", 1, [("structural/train/total", 1.0, 1, 0.0)])
    send("close", 1, 8)
    assert pickle.load(receiver) == (8, None)
    send("close", 0, 9)
    assert pickle.load(receiver) == (9, "No space left on device")
    send("exit", None)
    server.join()


def test_a_killed_event_writer_is_one_clear_error_and_the_run_can_close(tmp_path):
    logger = RunLogger(tmp_path / "tb", "structural", progress=False)
    logger.scalars("train", {"total": 1.0}, step=1)
    logger.events.process.process.kill()
    logger.events.process.process.wait()
    with pytest.raises(WriteError) as failed:
        logger.hand_over(wait=True)
    message = str(failed.value)
    assert f"events in {tmp_path / 'tb'}: the event writer process exited (signal 9)" in message
    assert "\n" not in message
    logger.close()  # after the failure: nothing more to write, no second error
    again = RunLogger(tmp_path / "tb2", "dense", progress=False)  # the next stage starts a new writer
    again.scalars("train", {"total": 1.0}, step=1)
    again.close()
    assert list((tmp_path / "tb2").glob("events.out.tfevents.*"))


def test_every_directory_of_a_process_shares_one_writer_process(tmp_path):
    first = RunLogger(tmp_path / "structural", "structural", progress=False)
    second = RunLogger(tmp_path / "dense", "dense", progress=False)
    assert first.events.process is second.events.process
    first.close()
    second.scalars("train", {"total": 1.0}, step=1)
    second.close()  # closing one directory's writer left the other's open


def test_the_event_writer_outlives_a_signal_to_the_process_group(tmp_path):
    """A group SIGTERM (preemption) or Ctrl-C reaches the writer too; it keeps writing until the
    training process, which saves first, closes it."""
    logger = RunLogger(tmp_path / "tb", "structural", progress=False)
    logger.hand_over(wait=True)  # the child is up and has its handlers
    for sig in STOP_SIGNALS:
        os.kill(logger.events.process.process.pid, sig)
    logger.scalars("train", {"total": 1.0}, step=1)
    logger.close()
    assert logger.events is None


def test_a_tensorboard_directory_that_cannot_be_made_is_refused_at_once(tmp_path):
    (tmp_path / "tb").write_text("a file where the directory should be")
    with pytest.raises(WriteError, match="cannot write TensorBoard events in"):
        RunLogger(tmp_path / "tb" / "structural", "structural", progress=False)


def test_scalars_reach_the_event_file_by_the_next_checkpoint_or_close(tmp_path):
    """Scalars go to the event writer process at most once a second, and always at hand_over() (the
    trainer calls it with wait=True before each checkpoint) and close()."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def steps():
        events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0}).Reload()
        return [e.step for e in events.Scalars("structural/train/total")] if events.Tags()["scalars"] else []

    logger = RunLogger(tmp_path / "tb", "structural", progress=False)
    for step in (1, 2, 3):
        logger.scalars("train", {"total": 1.0}, step=step)
    logger.hand_over(wait=True)
    assert steps() == [1, 2, 3]
    logger.scalars("train", {"total": 1.0}, step=4)
    logger.close()
    assert steps() == [1, 2, 3, 4]


def test_the_logger_uses_tensorboard_through_its_public_api_only():
    """No private attribute of TensorBoard or of torch's SummaryWriter, no hand-built protobuf
    events, no private class names: one release of either could break them."""
    import inspect

    from inktrace_train.train import eventwriter, logger

    source = inspect.getsource(logger) + inspect.getsource(eventwriter)
    private = re.findall(r"\.(_[a-z]\w*)", source)  # attribute names with a leading underscore
    assert set(private) <= {"_writing", "_finalizer"}, private
    assert "_pb2" not in source and "_Async" not in source

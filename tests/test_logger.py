"""RunLogger: a TensorBoard write that fails (disk full, directory gone) is one WriteError naming
the directory and the cause, raised at the next write, flush or close: never swallowed."""

from __future__ import annotations

import errno
import re

import pytest
from tensorboard.summary.writer.record_writer import RecordWriter

from inktrace_train.run.atomic import WriteError
from inktrace_train.train.logger import RunLogger


def test_a_full_disk_under_tensorboard_is_one_clear_error(tmp_path, monkeypatch):
    logger = RunLogger(tmp_path / "tb", "structural", progress=False)
    logger.scalars("train", {"total": 1.0}, step=1)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RecordWriter, "write", full)
    with pytest.raises(WriteError) as failed:
        for step in range(2, 200):  # the event writer's thread fails; a later call reports it
            logger.scalars("train", {"total": 1.0}, step=step)
        logger.close()
    message = str(failed.value)
    assert f"cannot write TensorBoard events in {tmp_path / 'tb'}: No space left on device" in message
    assert "\n" not in message
    logger.close()  # after the failure: nothing more to write, no second error


def test_a_tensorboard_directory_that_cannot_be_made_is_refused_at_once(tmp_path):
    (tmp_path / "tb").write_text("a file where the directory should be")
    with pytest.raises(WriteError, match="cannot write TensorBoard events in"):
        RunLogger(tmp_path / "tb" / "structural", "structural", progress=False)


def test_scalars_reach_the_event_file_by_the_next_checkpoint_or_close(tmp_path):
    """Scalars go to the scalar thread at most once a second, and always at hand_over() (the
    trainer calls it with wait=True before each checkpoint) and close()."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def steps():
        events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0}).Reload()
        return [e.step for e in events.Scalars("structural/train/total")] if events.Tags()["scalars"] else []

    logger = RunLogger(tmp_path / "tb", "structural", progress=False)
    for step in (1, 2, 3):
        logger.scalars("train", {"total": 1.0}, step=step)
    logger.hand_over(wait=True)
    logger.writer.flush()  # (TensorBoard's own thread appends to the file; wait for it)
    assert steps() == [1, 2, 3]
    logger.scalars("train", {"total": 1.0}, step=4)
    logger.close()
    assert steps() == [1, 2, 3, 4]


def test_the_logger_uses_tensorboard_through_its_public_api_only():
    """No private attribute of TensorBoard or of torch's SummaryWriter, no hand-built protobuf
    events, no private class names: one release of either could break them."""
    import inspect

    from inktrace_train.train import logger as logger_module

    source = inspect.getsource(logger_module)
    private = re.findall(r"\.(_[a-z]\w*)", source)  # attribute names with a leading underscore
    assert set(private) <= {"_writing"} and "_pb2" not in source and "_Async" not in source

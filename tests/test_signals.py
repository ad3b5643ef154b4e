"""Signals as clusters and terminals deliver them: to the whole process group, data-loader workers
included. Each stop saves the last completed optimizer step, exits cleanly with the resume line,
and the resumed run equals the uninterrupted one bit for bit."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Callable, List, Tuple

import pytest

from helpers import latest_step, run_cli, saved
from test_resume import RUN, assert_same_run, uninterrupted  # noqa: F401  (the module-scoped fixture)

WORKERS = RUN + ["data.num_workers=2"]


def children(pid: int) -> List[int]:
    """The data-loader workers: the run's child processes but its TensorBoard writer."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"eventwriter" not in command:
            found.append(int(stat.parent.name))
    return found


def run_until(workdir: Path, act: Callable[[subprocess.Popen], None] = print, pty: bool = False) -> Tuple[int, str]:
    """Start WORKERS into ``cut`` in a session of its own (with a pseudo-terminal as its
    controlling terminal if ``pty``), call ``act`` once epoch 1 is saved and its workers run, and
    return the exit status and stderr."""
    master = slave = None
    if pty:
        master, slave = os.openpty()

    def session() -> None:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a terminal starts a program (a shell's & ignores it)
        if pty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the terminal's foreground group: Ctrl-C reaches all of it

    proc = subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *WORKERS, "hydra.run.dir=cut"],
        cwd=workdir,
        stdin=slave if pty else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=session,
    )
    deadline = time.time() + 240
    while (latest_step(workdir / "cut")[0] < 4 or not children(proc.pid)) and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    if pty:
        os.write(master, b"\x03")  # Ctrl-C typed at the terminal
    else:
        act(proc)
    _, err = proc.communicate(timeout=180)
    for fd in (master, slave):
        if fd is not None:
            os.close(fd)
    return proc.returncode, err


def assert_saved_and_resumes(workdir: Path, uninterrupted_run: Path, status: str) -> None:
    ckpt = saved(workdir / "cut")
    assert ckpt["global_step"] >= 4 and ckpt["global_step"] < 12
    assert json.loads((workdir / "cut/run.json").read_text())["stages"]["structural"]["status"] == status
    resumed = run_cli(["+resume=cut"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(uninterrupted_run, workdir / "cut")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_to_the_whole_process_group_saves_and_resumes_exactly(uninterrupted, workdir, signum):  # noqa: F811
    """Slurm's preemption, time limit and scancel (SIGTERM), and its --signal (SIGUSR1), reach the
    workers too: they no longer die first and take the run down with them."""
    code, err = run_until(workdir, lambda proc: os.killpg(proc.pid, signum))
    name = signal.Signals(signum).name
    assert code == 75, err[-3000:]
    assert f"inktrace_train: stopped by {name} in stage structural, epoch " in err and "Traceback" not in err
    assert f"Continue with: python -m inktrace_train +resume={workdir / 'cut'}" in err
    assert name in (workdir / "cut/train.log").read_text()  # the stop is in the run's log too
    assert_saved_and_resumes(workdir, uninterrupted, "preempted")


@pytest.mark.slow
def test_ctrl_c_at_a_terminal_saves_and_resumes_exactly(uninterrupted, workdir):  # noqa: F811
    code, err = run_until(workdir, pty=True)
    assert code == 130, err[-3000:]
    assert "inktrace_train: interrupted (Ctrl-C) in stage structural, epoch " in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("inktrace_train: interrupted (Ctrl-C)")  # its own line
    assert_saved_and_resumes(workdir, uninterrupted, "interrupted")


@pytest.mark.slow
def test_a_worker_killed_without_a_stop_request_is_one_line_after_a_save(uninterrupted, workdir):  # noqa: F811
    """The OOM killer takes a worker: the run saves what is consistent and says so in one line."""
    code, err = run_until(workdir, lambda proc: os.kill(children(proc.pid)[0], signal.SIGKILL))
    assert code == 1, err[-3000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("inktrace_train: error:")]
    assert len(lines) == 1 and "a data-loader worker died" in lines[0] and "Traceback" not in err
    assert "is saved: resume the run" in lines[0]
    assert_saved_and_resumes(workdir, uninterrupted, "failed")

"""The old scripts' command lines map onto the new CLI, flag by flag."""

from __future__ import annotations

import pytest

from helpers import run_cli
from inktrace_train.cli.legacy import translate


@pytest.mark.parametrize(
    "script,flags,expected",
    [
        ("train_structural", [], ["stage=structural"]),
        ("train_dense", [], ["stage=dense"]),
        ("train_structural", ["--stage", "1"], ["stage=structural"]),
        ("train_dense", ["--stage", "2"], ["stage=dense"]),
        ("train_dense", ["--from-scratch"], ["stage=dense", "stage.init_from=null"]),
        ("train_structural", ["--embed-dim", "64"], ["stage=structural", "model.embed_dim=64"]),
        ("train_structural", ["--embed_dim", "64"], ["stage=structural", "model.embed_dim=64"]),
        ("train_structural", ["--num-layers", "2"], ["stage=structural", "model.num_layers=2"]),
        ("train_structural", ["--num_layers", "2"], ["stage=structural", "model.num_layers=2"]),
        ("train_dense", ["--lr", "1e-4"], ["stage=dense", "training.lr=0.0001"]),
        ("train_dense", ["--epochs", "7"], ["stage=dense", "training.epochs=7"]),
        ("train_dense", ["--batch_size", "8"], ["stage=dense", "training.batch_size=8"]),
        ("train_dense", ["--init_from", "runs/a"], ["stage=dense", "stage.init_from=runs/a"]),
        ("train_dense", ["--resume", "runs/a"], ["+resume=runs/a"]),
    ],
)
def test_each_old_flag_maps_to_its_override(script, flags, expected):
    assert translate(script, flags) == expected


def test_unknown_old_flag_is_refused_by_name(workdir):
    proc = run_cli(["train_dense", "--warmup", "3"], cwd=workdir, module="inktrace_train.legacy")
    assert proc.returncode == 2
    assert "unknown old flag(s) --warmup 3" in proc.stderr and "Traceback" not in proc.stderr


def test_legacy_prints_the_new_command_then_runs_it(workdir):
    proc = run_cli(["train_dense", "--resume", "no/such/run"], cwd=workdir, module="inktrace_train.legacy")
    assert "train_dense is deprecated; the same run is: python -m inktrace_train +resume=no/such/run" in proc.stderr
    assert proc.returncode == 2 and "resume: no such file or directory: no/such/run" in proc.stderr


@pytest.mark.parametrize(
    "argv,expected",
    [
        (
            ["train_dense", "--stage", "1"],
            "--stage 1 contradicts train_dense, which trains the dense stage; "
            "use `python -m inktrace_train.legacy train_structural`",
        ),
        ([], "name the old script (train_structural or train_dense)"),
    ],
)
def test_contradictions_and_a_bare_call_are_refused(workdir, argv, expected):
    proc = run_cli(argv, cwd=workdir, module="inktrace_train.legacy")
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert not (workdir / "outputs").exists()

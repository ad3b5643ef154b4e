"""Fuzzed command lines: a few hundred random and near-miss ones, each run through the real entry
point (in this process, training itself replaced by a no-op). Every one either starts the run the
README describes (exit 0) or exits 2 with one line naming the key, value or file: never a Python
traceback, never Hydra's multi-line message, never a directory left behind by a run that did not
start. A sample runs as real subprocesses too."""

from __future__ import annotations

import io
import random
import string
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

from helpers import run_cli, tiny, write_old_checkpoints

CASES = 320
ERROR_PREFIX = "inktrace_train: error: "
# Before every new-run case, so that what a case leaves valid is the tiny run (a case overrides these).
BASE = tiny()


class Started(BaseException):
    """Raised where the first epoch would begin: everything before it (device, directory, data,
    model, optimizer, stage.init_from) has run for real."""


@dataclass
class Case:
    argv: List[str]
    names: Optional[str] = None  # must appear in the error line when it fails
    must_fail: bool = False


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A finished run, a finished sweep, an old-format file, a text file and random bytes."""
    cwd = tmp_path_factory.mktemp("fuzz")
    assert run_cli(tiny("hydra.run.dir=run"), cwd=cwd).returncode == 0
    sweep = run_cli(["-m", *tiny("training.lr=1e-3,5e-4"), "hydra.sweep.dir=sweep"], cwd=cwd)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    write_old_checkpoints(cwd)
    (cwd / "notes.txt").write_text("not a checkpoint\n")
    (cwd / "junk.pth").write_bytes(random.Random(0).randbytes(5000))
    (cwd / "afile").write_text("x")
    return cwd


def mutate(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    kind = rng.choice(["drop", "swap", "add", "replace"])
    if kind == "drop" and len(word) > 1:
        return word[:i] + word[i + 1 :]
    if kind == "swap" and i + 1 < len(word) and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "add":
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i:]
    return word[:i] + rng.choice([c for c in string.ascii_lowercase if c != word[i]]) + word[i + 1 :]


def cases(rng: random.Random) -> List[Case]:
    from inktrace_train.config.schema import Config, schema_keys
    from inktrace_train.launch.compose import group_options

    keys = [k for k in schema_keys() if not k.startswith("stage.overrides")]
    types = {k: type(_default(Config(), k)) for k in keys}
    found: List[Case] = []
    for _ in range(90):  # misspelt keys: the nearest key or at least the key itself is named
        key = rng.choice(keys)
        parts = key.split(".")
        j = rng.randrange(len(parts))
        parts[j] = mutate(parts[j], rng)
        bad = ".".join(parts)
        if bad not in keys and not any(k.startswith(bad + ".") for k in keys):
            found.append(Case([f"{bad}=1"], names=bad, must_fail=True))
    for group in ("model", "stage", "data", "training", "experiment"):
        for option in group_options(group, []):
            bad = mutate(option, rng)
            if bad not in group_options(group, []):
                found.append(Case([f"{group}={bad}"], names=bad, must_fail=True))
        found.append(Case([f"{mutate(group, rng)}=x"], must_fail=True))
    for _ in range(70):  # wrong types
        key = rng.choice([k for k in keys if types[k] in (int, float, bool, list)])
        value = rng.choice(["abc", "[1,2]", "{a: 1}", "1.5x", "true false"])
        if types[key] is float and value == "1.5x":
            value = "x1.5"
        found.append(Case([f"{key}={value}"], names=key))
    for _ in range(70):  # out of range or odd numbers: refused in one line, or a valid run
        key = rng.choice([k for k in keys if types[k] in (int, float)])
        found.append(Case([f"{key}={rng.choice(['-1', '0', '1e30', 'nan', 'inf', '-inf', '99999999999'])}"]))
    for _ in range(25):  # empty values
        found.append(Case([f"{rng.choice(keys)}="]))
    found += [
        Case(["stage=foo"], names="foo", must_fail=True),
        Case(["stage=ALL"], names="ALL", must_fail=True),
        Case(["stage.name=foo"], names="foo", must_fail=True),
        Case(["stage=dens"], names="dens", must_fail=True),
        Case(["model=tinyy"], names="tinyy", must_fail=True),
        Case(["stage.pipeline=[dense,structural]"], names="stage.pipeline", must_fail=True),
        Case(["stage.pipeline=[]"], names="stage.pipeline", must_fail=True),
        Case(["training.lr=１e-3"], names="training.lr"),
        Case(["träining.lr=1"], must_fail=True),
        Case(["model=tíny"], must_fail=True),
        Case(["data.root=データ/漢字"]),
        Case(["training.lr=🔥"], names="training.lr", must_fail=True),
        Case(["training.lr=" + "1" * 5000]),
        Case(["a" * 3000 + "=1"], must_fail=True),
        Case(["training.device=" + "x" * 4000], names="training.device", must_fail=True),
        Case(["hydra.run.dir=" + "d" * 300], must_fail=True),
        Case(["training.lr=1e-3,5e-4"], names="-m", must_fail=True),
        Case(["model=tiny,default"], names="-m", must_fail=True),
        Case(["training.epochs=range(1,3)"], names="-m", must_fail=True),
        Case(["stage=all", 'stage.overrides.dense=["model.embed_dim=64"]'], names="backbones differ", must_fail=True),
        Case(["stage=all", 'stage.overrides.dense=["stage.name=structural"]'], names="pipeline", must_fail=True),
        Case(["stage=all", 'stage.overrides.dense=["training.lrr=1"]'], names="training.lrr", must_fail=True),
        Case(["stage=all", 'stage.overrides.dense=["training.epochs=0"]'], names="training.epochs", must_fail=True),
        Case(["stage=all", 'stage.overrides.dens=["training.lr=1"]'], names="dens", must_fail=True),
        Case(
            ["stage=all", "stage.overrides.dense=[model.embed_dim=64]"], names="stage.overrides.dense", must_fail=True
        ),
        Case(["stage=all", 'stage.overrides.dense=["model=tinyy"]'], names="tinyy", must_fail=True),
        Case(["training.device=cuda"], names="training.device", must_fail=True),
        Case(["training.device=cuda:1"], names="training.device", must_fail=True),
        Case(["training.device=tpu"], names="training.device", must_fail=True),
        Case(["training.device=mps"], names="training.device", must_fail=True),
        Case(["hydra.run.dir=/proc/nope/run"], must_fail=True),
        Case(["hydra.run.dir=afile/run"], must_fail=True),
        Case(["hydra.run.dir=run"], names="+resume=run", must_fail=True),  # holds a run
        Case(["training.lr=("], names="training.lr=(", must_fail=True),
        Case(["=1"], must_fail=True),
        Case(["training.lr='open"], must_fail=True),
        Case(["stage.init_from=nowhere"], names="nowhere", must_fail=True),
        Case(["stage.init_from=notes.txt"], names="notes.txt", must_fail=True),
        Case(["stage.init_from=junk.pth"], names="junk.pth", must_fail=True),
    ]
    resume = [  # +resume= on every kind of path
        Case(["+resume=nonsense/path"], names="nonsense/path", must_fail=True),
        Case(["+resume=run"]),
        Case(["+resume=run", "training.epochs=2"]),
        Case(["+resume=run", "training.lr=0.5"], names="training.lr", must_fail=True),
        Case(["+resume=run", "training.lrr=0.5"], names="training.lrr", must_fail=True),
        Case(["+resume=run", "stage=dense"], names="stage.init_from", must_fail=True),
        Case(["+resume=sweep"]),
        Case(["-m", "+resume=sweep"]),
        Case(["+resume=sweep/0"]),
        Case(["+resume=run/checkpoints/structural/checkpoint_latest.pth"]),
        Case(["+resume=run/checkpoints/structural/checkpoint_best.pth"]),
        Case(["+resume=run/checkpoints/structural"], names="run/checkpoints/structural", must_fail=True),
        Case(["+resume=bare.pth", *tiny()]),
        Case(["+resume=model-dict.pth", *tiny()]),
        Case(["+resume=notes.txt"], names="notes.txt", must_fail=True),
        Case(["+resume=junk.pth"], names="junk.pth", must_fail=True),
        Case(["+resume=afile"], names="afile", must_fail=True),
        Case(["+resume="], must_fail=True),
        Case(["-m", "+resume=run"], names="run", must_fail=True),
    ]
    rng.shuffle(found)
    return resume + found[: CASES - len(resume)]


def _default(node, key: str):
    for part in key.split("."):
        node = getattr(node, part)
    return node


def listing(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".hydra" not in p.parts}


def run_in_process(argv: List[str], monkeypatch) -> tuple[int, str]:
    """``python -m inktrace_train ARGV`` in this process: (exit status, stderr)."""
    from hydra.core.global_hydra import GlobalHydra

    import inktrace_train.__main__ as entry

    GlobalHydra.instance().clear()
    monkeypatch.setattr(entry, "SWEEP", entry.SweepState())
    monkeypatch.setattr(sys, "argv", ["inktrace_train", *argv])
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stderr(err), redirect_stdout(out):
        try:
            entry.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, err.getvalue()


@pytest.mark.slow
def test_fuzzed_command_lines_start_or_fail_in_one_line(world, monkeypatch):
    from inktrace_train.train.trainer import Trainer

    def fit(self):
        raise Started

    monkeypatch.setattr(Trainer, "fit", fit)
    monkeypatch.chdir(world)
    problems = []
    all_cases = cases(random.Random(2026))
    for case in all_cases:
        before = listing(world)
        resume = any("resume=" in a for a in case.argv)
        try:
            code, err = run_in_process(case.argv if resume else [*BASE, *case.argv], monkeypatch)
        except Started:
            if case.must_fail:
                problems.append(f"{case.argv}: started, expected a one-line refusal")
            continue
        except Exception as e:  # what a user would see as a traceback
            problems.append(f"{case.argv}: traceback {type(e).__name__}: {e}")
            continue
        lines = [line for line in err.splitlines() if line.strip() and "warn" not in line.lower()]
        if code == 0:
            if case.must_fail or not resume:
                problems.append(f"{case.argv}: exit 0 without starting a run")
            continue
        if code != 2 or len(lines) != 1 or not lines[0].startswith(ERROR_PREFIX):
            problems.append(f"{case.argv}: exit {code}, stderr {err[-600:]!r}")
        elif case.names and case.names not in lines[0]:
            problems.append(f"{case.argv}: the error does not name {case.names!r}: {lines[0]}")
        left = listing(world) - before
        if left:
            problems.append(f"{case.argv}: a run that did not start left {sorted(left)[:3]}")
    assert problems == [], "\n".join(p[:400] for p in problems)
    assert len(all_cases) >= 300


@pytest.mark.parametrize(
    "argv,names",
    [
        (["model=tinyy"], "tinyy"),
        (["stage=dens"], "dens"),
        (["training.lr=1e-3,5e-4"], "-m"),
        (["training.device=cuda"], "training.device"),
        (["+resume=notes.txt"], "notes.txt"),
    ],
)
def test_a_sample_as_real_subprocesses(workdir, argv, names):
    (workdir / "notes.txt").write_text("not a checkpoint\n")
    proc = run_cli(argv, cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and names in proc.stderr, proc.stderr

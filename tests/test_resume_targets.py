"""``+resume=PATH`` for every kind of directory a user may name: each resumes exactly what it names
or is refused in one line that says what to pass instead. None ever starts a fresh run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import run_cli, tiny

SMALL = tiny("data.train_samples=32", "data.val_samples=16", "training.batch_size=16")


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """outputs/<date>/ with two finished runs, and multirun/<date>/<time>/ a finished 2-job sweep."""
    root = tmp_path_factory.mktemp("targets")
    for name in ("a", "b"):
        assert run_cli([*SMALL, f"hydra.run.dir=outputs/2026-12-03/{name}"], cwd=root).returncode == 0
    sweep = ["-m", "training.lr=1e-3,5e-4", *SMALL, "hydra.sweep.dir=multirun/2026-12-03/10-00-00"]
    assert run_cli(sweep, cwd=root).returncode == 0
    (root / "empty").mkdir()
    return root


CASES = {
    # name: (PATH, extra args, exit status, what stdout or stderr says)
    "run": ("outputs/2026-12-03/a", [], 0, "is already finished (every stage done, best metric"),
    "run, with the way on": ("outputs/2026-12-03/a", [], 0, "to train longer: python -m inktrace_train +resume="),
    "a stage's checkpoint folder": (
        "outputs/2026-12-03/a/checkpoints/structural",
        [],
        2,
        "is the checkpoint folder of stage structural: resume its run with +resume=outputs/2026-12-03/a",
    ),
    "a checkpoint file": (
        "outputs/2026-12-03/a/checkpoints/structural/checkpoint_latest.pth",
        [],
        0,
        "already finished",
    ),
    "a sweep": ("multirun/2026-12-03/10-00-00", [], 0, "job 0 is done"),
    "a sweep with -m": ("multirun/2026-12-03/10-00-00", ["-m", "training.lr=1e-3,5e-4", *SMALL], 0, "job 1 is done"),
    "a sweep job": ("multirun/2026-12-03/10-00-00/1", [], 0, "is already finished"),
    "a multirun date folder": (
        "multirun/2026-12-03",
        [],
        2,
        "is not a run: it holds 1 sweep; resume one of them with +resume=PATH (multirun/2026-12-03/10-00-00)",
    ),
    "an outputs date folder": (
        "outputs/2026-12-03",
        [],
        2,
        "is not a run: it holds 2 runs; resume one of them with +resume=PATH "
        "(outputs/2026-12-03/a, outputs/2026-12-03/b)",
    ),
    "the folder the runs went into": (".", [], 2, "is not a run: it holds 2 runs and 1 sweep"),
    "a folder with no run": (
        "empty",
        [],
        2,
        "resume: empty is not a run directory (it has no config.yaml and run.json), and holds none",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_resume_of_every_directory_kind(place, case):
    path, extra, status, says = CASES[case]
    before = sorted(str(p.relative_to(place)) for p in place.rglob("*") if p.is_dir())
    proc = run_cli([*extra, f"+resume={path}"], cwd=place)
    assert proc.returncode == status, proc.stderr[-2000:]
    assert says in proc.stdout + proc.stderr
    if status:
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    after = sorted(str(p.relative_to(place)) for p in place.rglob("*") if p.is_dir())
    new = [d for d in after if d not in before and "/.hydra/resume-" not in f"/{d}" and "resume-" not in d]
    assert new == [], f"{case} made {new}"  # no fresh run anywhere
    shutil.rmtree(place / "outputs" / "tmp", ignore_errors=True)

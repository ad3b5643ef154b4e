"""A checkpoint whose unpickling would run code: every load path refuses it with one line, and
the code never runs (a marker file it would create stays absent)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from helpers import run_cli, tiny


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_evil(path: Path, marker: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"version": 1, "model_state_dict": _Exploit(marker)}, f)
    return path


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A finished tiny run, an evil file beside it, and a copy of the run whose latest checkpoint is evil."""
    cwd = tmp_path_factory.mktemp("hostile")
    assert run_cli([*tiny(), "hydra.run.dir=run"], cwd=cwd).returncode == 0
    marker = cwd / "pwned"
    write_evil(cwd / "evil.pth", marker)
    shutil.copytree(cwd / "run", cwd / "poisoned")
    write_evil(cwd / "poisoned/checkpoints/structural/checkpoint_latest.pth", marker)
    (cwd / "poisoned/checkpoints/structural/checkpoint_best.pth").unlink()
    return cwd, marker


REFUSED = "refused, since loading it could run code"
CASES = [
    ("inktrace_train", ["+resume=evil.pth"], 2, REFUSED),
    ("inktrace_train", [*tiny("stage=dense"), "stage.init_from=evil.pth", "hydra.run.dir=new"], 2, REFUSED),
    # Inside a run the manifest (size, SHA-256) rejects the swapped file before it is ever unpickled.
    ("inktrace_train", ["+resume=poisoned", "training.epochs=2"], 2, "checkpoint_latest.pth is truncated or corrupt"),
    ("inktrace_train.ckpt", ["inspect", "evil.pth"], 1, REFUSED),
    ("inktrace_train.ckpt", ["verify", "evil.pth"], 1, REFUSED),
    ("inktrace_train.ckpt", ["compare", "evil.pth", "run"], 1, REFUSED),
    ("inktrace_train.ckpt", ["convert", "evil.pth", "out.pth"], 1, REFUSED),
    ("inktrace_train.legacy", ["train_dense", "--resume", "evil.pth"], 2, REFUSED),
]


@pytest.mark.slow
@pytest.mark.parametrize("module,args,code,said", CASES, ids=[f"{m.split('.')[-1]} {a[0]}" for m, a, _, _ in CASES])
def test_every_load_path_refuses_code_in_a_checkpoint(place, module, args, code, said):
    cwd, marker = place
    proc = run_cli(args, cwd=cwd, module=module)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert said in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (cwd / "new").exists() and not (cwd / "out.pth").exists()

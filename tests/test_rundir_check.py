"""The check that a new run's directory can be made, before Hydra makes it (``check_creatable``).

It makes the missing folders and removes them again. Runs started at once in a fresh folder (a
shell loop with ``&``, a Slurm array) each check their own ``outputs/<date>/<time>_<id>`` under
the same new ``outputs/<date>``: one's removal must not take a folder from under the other.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from inktrace_train.config.schema import ConfigError
from inktrace_train.launch.compose import check_creatable


def test_a_new_directory_is_checked_and_nothing_is_left(tmp_path):
    check_creatable(tmp_path / "outputs" / "day" / "run", "hydra.run.dir")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_stays(tmp_path):
    (tmp_path / "run").mkdir()
    check_creatable(tmp_path / "run", "hydra.run.dir")
    assert (tmp_path / "run").is_dir()


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "outputs").write_text("")
    with pytest.raises(ConfigError, match=r"hydra.run.dir=.*outputs/run: cannot create it"):
        check_creatable(tmp_path / "outputs" / "run", "hydra.run.dir")
    (tmp_path / "run").write_text("")
    with pytest.raises(ConfigError, match=r"hydra.run.dir=.*run: a file is in the way"):
        check_creatable(tmp_path / "run", "hydra.run.dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs", "run"]


def test_a_walk_that_loses_many_times_to_other_checks_removals_still_passes(tmp_path, monkeypatch):
    """Another check removes the new ``outputs/<date>`` between two steps of this one's walk, twelve
    times over (a walk loses at most about three times per check running at once). Five walks,
    as before the fix, failed in CI with eight checks at once."""
    leaf = tmp_path / "outputs" / "2026-12-07" / "10-00-00_0"
    real_mkdir, losses = Path.mkdir, []

    def mkdir(self: Path, *args, **kwargs) -> None:
        if self == leaf and len(losses) < 12:
            losses.append(self)
            self.parent.rmdir()  # the other check's removal, just before this step
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    check_creatable(leaf, "hydra.run.dir")
    assert len(losses) == 12 and list(tmp_path.iterdir()) == []


def test_checks_at_once_under_one_new_folder_all_pass(tmp_path):
    """Eight checks at once, 40 times, each time under a fresh ``outputs/<date>``. Before the fix
    one check's removal of the shared folders failed another's (a folder not empty, or gone as
    the other made its run's folder in it): one of two runs started in the same second failed."""
    threads, rounds = 8, 40
    errors: list = []
    for k in range(rounds):
        root = tmp_path / str(k)
        barrier = threading.Barrier(threads)

        def check(i: int, root: Path = root, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                check_creatable(root / "outputs" / "2026-12-07" / f"10-00-00_{i}", "hydra.run.dir")
            except Exception as e:  # every failure is the finding
                errors.append(repr(e))

        workers = [threading.Thread(target=check, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert errors == []
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith("10-00-00")]
    assert leftovers == []

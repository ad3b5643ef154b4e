"""The kill campaign, small: random SIGKILLs aimed at saves, rotation and stage boundaries of
single-stage and stage=all runs, each resumed until done and compared with an uninterrupted run.
The large campaign is ``python scripts/kill_campaign.py --kills 200`` (docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO

KILLS = 12


@pytest.mark.slow
def test_every_random_kill_is_survived(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/kill_campaign.py"), "--kills", str(KILLS), "--seed", "7"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0 and f"kills survived: {KILLS}/{KILLS}" in proc.stdout, proc.stdout + proc.stderr

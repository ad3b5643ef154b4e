"""Corrupt checkpoints and manifests: every damaged byte is found by the file's own SHA-256 seal,
before any tensor is used, and a lost manifest never costs a valid checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from helpers import tiny_model
from inktrace_train.checkpoint.store import SEAL, Checkpoint, CheckpointError, CheckpointManager, load_checkpoint
from inktrace_train.run.rundir import LATEST, MANIFEST, periodic_name
from inktrace_train.run.stagefiles import newest_valid

CORRUPTIONS = 1000


def tiny_checkpoint(epoch: int) -> Checkpoint:
    torch.manual_seed(epoch)
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.rand(1, 2, 64, 64))["skeleton"].mean().backward()
    optimizer.step()
    return Checkpoint(
        model_state_dict=model.state_dict(),
        optimizer_state_dict=optimizer.state_dict(),
        epoch=epoch,
        global_step=epoch * 4,
        metric=0.1 * epoch,
        metadata={"stage": "structural"},
    )


def corrupt(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One random corruption of ``data`` that changes it: (new bytes, what was done)."""
    kind = rng.choice(["flip", "overwrite", "zero", "truncate", "delete", "insert", "seal"])
    n = len(data)
    length = rng.choice([1, 1, 2, 8, 64, 4096])
    pos = rng.randrange(n - len(SEAL) - 64, n) if kind == "seal" else rng.randrange(n)
    buf = bytearray(data)
    if kind in ("flip", "seal"):
        for i in range(pos, min(n, pos + length)):
            buf[i] ^= rng.randrange(1, 256)
    elif kind == "overwrite":
        chunk = bytes(rng.randrange(256) for _ in range(min(length, n - pos)))
        buf[pos : pos + len(chunk)] = chunk
    elif kind == "zero":
        buf[pos : pos + length] = bytes(len(buf[pos : pos + length]))
    elif kind == "truncate":
        del buf[pos:]
    elif kind == "delete":
        del buf[pos : pos + length]
    else:
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(length))
    return bytes(buf), f"{kind} at {pos} length {length}"


def test_every_random_corruption_is_detected_and_named(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", keep_last_n=3, save_interval=1)
    manager.save(tiny_checkpoint(1), is_best=True)
    data = (tmp_path / "ckpt" / LATEST).read_bytes()
    assert data[-len(SEAL) - 64 :].startswith(SEAL)
    rng = random.Random(12)
    target = tmp_path / "damaged.pth"
    undetected = []
    for _ in range(CORRUPTIONS):
        damaged, what = corrupt(data, rng)
        if damaged == data:  # an overwrite that wrote the same bytes changed nothing
            continue
        target.write_bytes(damaged)
        try:
            load_checkpoint(target)
        except CheckpointError as e:
            assert str(target) in str(e) and "\n" not in str(e)
        else:
            undetected.append(what)
    assert undetected == []


def test_a_corrupt_latest_falls_back_to_the_newest_valid_file(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last_n=3, save_interval=1)
    for epoch in (1, 2, 3):
        manager.save(tiny_checkpoint(epoch), is_best=False)
    for victim in (LATEST, periodic_name(3)):
        data = bytearray((tmp_path / victim).read_bytes())
        data[len(data) // 2] ^= 0xFF  # one byte inside the tensor data
        (tmp_path / victim).write_bytes(bytes(data))
    (tmp_path / MANIFEST).unlink()  # not even the manifest can tell: the seals do
    restored = load_checkpoint(newest_valid(tmp_path))  # what a resume loads
    assert restored.epoch == 2
    expected = tiny_checkpoint(2).model_state_dict
    assert all(torch.equal(restored.model_state_dict[k], v) for k, v in expected.items())


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),
        lambda p: p.write_bytes(p.read_bytes()[:37]),
        lambda p: p.write_text("not json {"),
        lambda p: p.write_text("[1, 2, 3]"),
        lambda p: p.write_text('{"files": {"checkpoint_latest.pth": 7}, "periodic": "x"}'),
        lambda p: p.write_bytes(b"\xff\xfe\x00garbage"),
    ],
    ids=["deleted", "truncated", "not-json", "a-list", "wrong-shape", "binary"],
)
def test_a_lost_manifest_discards_nothing_valid(tmp_path, damage):
    manager = CheckpointManager(tmp_path, keep_last_n=3, save_interval=1)
    for epoch in (1, 2, 3):
        manager.save(tiny_checkpoint(epoch), is_best=epoch == 2)
    files = sorted(p.name for p in tmp_path.glob("*.pth"))
    damage(tmp_path / MANIFEST)
    reopened = CheckpointManager(tmp_path, keep_last_n=3, save_interval=1)
    assert load_checkpoint(newest_valid(tmp_path)).epoch == 3
    for name in files:  # every file is verified by its content and still loads
        assert load_checkpoint(tmp_path / name).epoch in (1, 2, 3)
    reopened.save(tiny_checkpoint(4), is_best=False)  # the next save rewrites a whole manifest
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["periodic"] == [periodic_name(e) for e in (2, 3, 4)]
    assert {p.name for p in tmp_path.glob("*.pth")} >= set(files) - {periodic_name(1)}


def test_files_written_before_seals_still_load(tmp_path):
    path = Path(tmp_path) / "old.pth"
    torch.save(tiny_checkpoint(1).to_dict(), path)
    assert load_checkpoint(path).epoch == 1

"""Fuzzed stroke files: truncated, bit-flipped, wrong types, huge numbers, entity bombs, external
entities and DTDs, deep nesting, huge point lists. Every one is a counted skip or a glyph:
never a traceback, never a hang, never unbounded memory, never a file read behind the user's back."""

from __future__ import annotations

import random
import signal
import time
import tracemalloc

import numpy as np
import pytest

from helpers import REPO
from inktrace_train.data import strokes
from inktrace_train.data.formats import Skip

FIXTURES = REPO / "tests/data/strokes"
SEEDS = {p.suffix: p.read_bytes() for p in sorted(FIXTURES.rglob("*")) if p.is_file()}
SECRET = "INJECTED-SECRET"
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>"
)
HOSTILE = {
    "laughs.svg": LAUGHS + '<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text><line x2="1"/></svg>',
    "laughs.inkml": LAUGHS + '<ink xmlns="http://www.w3.org/2003/InkML"><trace>0 0, &lol9;</trace></ink>',
    "quadratic.svg": '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "' + "x" * 50000 + '">]>'
    '<svg xmlns="http://www.w3.org/2000/svg" id="' + "&a;" * 2000 + '"/>',
    "file_entity.inkml": '<?xml version="1.0"?><!DOCTYPE ink [<!ENTITY e SYSTEM "secret.txt">]>'
    '<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">&e;</annotation><trace>0 0, 5 5</trace></ink>',
    "net_entity.svg": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY e SYSTEM "http://127.0.0.1:9/x">]>'
    '<svg xmlns="http://www.w3.org/2000/svg"><text>&e;</text><line x2="1"/></svg>',
    "parameter.svg": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY % p SYSTEM "secret.dtd"> %p;]>'
    '<svg xmlns="http://www.w3.org/2000/svg"><line x2="1"/></svg>',
    "external_dtd.inkml": '<?xml version="1.0"?><!DOCTYPE ink SYSTEM "secret.dtd">'
    '<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">&s;</annotation><trace>0 0, 5 5</trace></ink>',
    "deep.svg": '<svg xmlns="http://www.w3.org/2000/svg">' + "<g>" * 100000 + "</g>" * 100000 + "</svg>",
    "many_points.inkml": '<ink xmlns="http://www.w3.org/2003/InkML"><trace>' + "1 2, 3 4, " * 150000 + "</trace></ink>",
    "huge_curve.svg": '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1">'
    '<path d="M0,0 C1e30,1e30 -1e30,1e30 1,0"/></svg>',
    "inf.svg": '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0,0 L1e999,0"/></svg>',
    "big_int.ndjson": '{"strokes": [[[0, ' + "9" * 5000 + "], [0, 1]]]}\n",
    "nested.ndjson": "[" * 200000 + "]" * 200000 + "\n",
    "types.ndjson": "\n".join(
        [
            "null",
            "[]",
            '{"strokes": null}',
            '{"strokes": "abc"}',
            '{"strokes": [1, 2]}',
            '{"strokes": [[[0, 1], [0]]]}',
            '{"strokes": [[[0, {"a": 1}], [0, 1]]]}',
            '{"strokes": [[[0, 1], [0, 1]]], "key": [1]}',
            '{"strokes": [[[0, 1], [0, 1]]], "label": 7}',
            '{"strokes": [[[0, NaN], [0, 1]]]}',
            '{"strokes": [[[0, Infinity], [0, 1]]]}',
            '{"strokes": [[[0, 1e308, -1e308], [0, 1, 2]]]}',
            '{"strokes": [[[true, false], [0, 1]]]}',
        ]
    )
    + "\n",
    "binary.svg": bytes(range(256)) * 10,
    "utf16.ndjson": '{"strokes": [[[0, 1], [0, 1]]]}\n'.encode("utf-16"),
}


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:  # truncated mid-write
        return data[: rng.randrange(len(data))]
    if kind == 1:  # random bytes flipped
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:  # numbers made huge, negative, NaN or junk
        token = rng.choice([b"1e308", b"-1e999", b"NaN", b"1" * 400, b"--", b"", b"1e-320", b"\x00"])
        return data.replace(b"0", token, rng.randint(1, 5))
    if kind == 3:  # a slice repeated or deleted
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        return data[:i] + data[i:j] * rng.randint(0, 20) + data[j:]
    return data.replace(b",", b" ", rng.randint(1, 20)).replace(b"]", b"", rng.randint(0, 2))


def cases():
    rng = random.Random(22)
    out = {name: text.encode() if isinstance(text, str) else text for name, text in HOSTILE.items()}
    for k in range(240):
        suffix = rng.choice(sorted(SEEDS))
        out[f"fuzz{k:03d}{suffix}"] = mutate(SEEDS[suffix], rng)
    return out


class Hang(BaseException):
    """Not an Exception: the reader's catch-all must not swallow it."""


def _alarm(signum, frame):
    raise Hang("a stroke file took more than 300 s")


def test_fuzzed_and_hostile_files_are_skips_or_glyphs_never_errors(tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.dtd").write_text(f'<!ENTITY s "{SECRET}">')
    folder = tmp_path / "ink"
    folder.mkdir()
    for name, data in cases().items():
        (folder / name).write_bytes(data)
    previous = signal.signal(signal.SIGALRM, _alarm)
    worst_time, worst_memory, skipped = 0.0, 0, set()
    try:
        for path in sorted(folder.iterdir()):
            tracemalloc.start()
            signal.alarm(300)  # a hang fails the test instead of stopping the suite (wall time: shared cores)
            t0 = time.process_time()
            entry, _ = strokes.parse_file(path, path.name, path.stat().st_size, 0)
            worst_time = max(worst_time, time.process_time() - t0)
            signal.alarm(0)
            worst_memory = max(worst_memory, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            if entry.skips:
                skipped.add(path.name)
            assert all(isinstance(s, Skip) and s.reason for s in entry.skips)
            for g in entry.glyphs:
                assert SECRET not in g.label
                pts = np.concatenate(g.strokes)
                assert pts.dtype == np.float32 and np.isfinite(pts).all() and np.ptp(pts, axis=0).max() > 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert worst_memory < 256 * 2**20, f"{worst_memory / 2**20:.0f} MiB for one file"
    assert worst_time < 20, f"{worst_time:.1f} s of CPU for one file"
    assert set(HOSTILE) <= skipped  # every hostile file is reported
    print(f"worst file: {worst_time:.2f} s CPU, {worst_memory / 2**20:.1f} MiB; {len(skipped)} of {len(cases())} skips")


@pytest.mark.parametrize("name", ["file_entity.inkml", "external_dtd.inkml", "parameter.svg", "net_entity.svg"])
def test_external_entities_and_dtds_are_never_read(tmp_path, name):
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.dtd").write_text(f'<!ENTITY s "{SECRET}">')
    path = tmp_path / name
    path.write_text(HOSTILE[name])
    entry, readable = strokes.parse_file(path, name, path.stat().st_size, 0)
    assert not readable and not entry.glyphs
    (skip,) = entry.skips
    assert skip.reason == "unparseable file" and SECRET not in skip.detail

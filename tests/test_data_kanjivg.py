"""KanjiVG: SVG path parsing, the verified cache and the codepoint split."""

import logging
import re
import shutil
import time

import numpy as np
import pytest

from inktrace_train.data import DataError, KanjiVGStrokes, kanjivg, npzcache
from inktrace_train.data.svgpath import flatten_cubics, parse_path, path_to_polylines, tokenize

# A few real files: plain, ASCII, a variant, relative move "m" (034c1), "S" (04e82), "s" (04e17).
SAMPLE_FILES = ["04e00.svg", "0002c.svg", "06f22.svg", "04e14-Kaisho.svg", "034c1.svg", "04e82.svg", "04e17.svg"]
_START = re.compile(r'<path\b[^>]*?\sd="\s*[Mm]\s*([-+]?[\d.]+)[\s,]*([-+]?[\d.]+)')


def sample_paths():
    folder = kanjivg.kanji_dir()
    return [folder / name for name in SAMPLE_FILES if (folder / name).exists()]


@pytest.fixture()
def small_source(tmp_path):
    src = tmp_path / "svg"
    src.mkdir()
    for path in sample_paths():
        shutil.copy(path, src)
    npzcache.forget()
    yield src
    npzcache.forget()


# ---- path syntax ---------------------------------------------------------------------------


def test_tokenizer_separators_signs_and_dots():
    assert tokenize("c-1.2,3-4.5.6") == [("c", [-1.2, 3.0, -4.5, 0.6])]
    assert tokenize("M1e2-.5 L 3 , 4") == [("M", [100.0, -0.5]), ("L", [3.0, 4.0])]
    assert tokenize("m.5.5z") == [("m", [0.5, 0.5]), ("z", [])]
    with pytest.raises(ValueError):
        tokenize("M1,2 X3")


def test_smooth_cubic_reflects_previous_control():
    absolute = parse_path("M0,0 C0,10 10,10 10,0 S20,-10 20,0")[0]
    relative = parse_path("m0,0 c0,10 10,10 10,0 s10,-10 10,0")[0]
    np.testing.assert_allclose(absolute[1], [[10, 0], [10, -10], [20, -10], [20, 0]])
    np.testing.assert_allclose(relative[1], absolute[1])
    # S after a non-curve: the first control point is the pen itself.
    np.testing.assert_allclose(parse_path("M0,0 S5,5 10,0")[0][0], [[0, 0], [0, 0], [5, 5], [10, 0]])


def test_other_commands():
    # Implicit lineto after a moveto, H/V, close path, quadratic and its reflection.
    segs = parse_path("M0,0 10,0 v10 H0 z")[0]
    np.testing.assert_allclose([s[3] for s in segs], [[10, 0], [10, 10], [0, 10], [0, 0]])
    q = parse_path("M0,0 Q5,10 10,0 T20,0")[0]
    # T reflects the control (5, 10) about (10, 0) to (15, -10); cubic form: 2/3 of the way.
    np.testing.assert_allclose(q[1][1], [10 + 2 / 3 * 5, -2 / 3 * 10])
    with pytest.raises(ValueError):
        parse_path("M0,0 A5,5 0 0 1 10,0")


def test_flattening_tolerance():
    cubic = np.array([[[0, 0], [0, 40], [40, 40], [40, 0]]], dtype=float)
    poly = flatten_cubics(cubic, 0.05)
    t = np.linspace(0, 1, 2001)[:, None]
    c = cubic[0]
    dense = (1 - t) ** 3 * c[0] + 3 * (1 - t) ** 2 * t * c[1] + 3 * (1 - t) * t**2 * c[2] + t**3 * c[3]
    # Distance from each dense curve point to the polyline's nearest segment.
    a, b = poly[:-1], poly[1:]
    ab = b - a
    u = np.clip(np.einsum("psk,sk->ps", dense[:, None] - a[None], ab) / np.sum(ab * ab, 1), 0, 1)
    dist = np.linalg.norm(dense[:, None] - (a[None] + u[..., None] * ab[None]), axis=2).min(axis=1)
    assert dist.max() <= 0.05
    np.testing.assert_allclose(poly[[0, -1]], [[0, 0], [40, 0]])
    assert len(path_to_polylines("M0,0 L50,0")[0]) == 2  # a line costs one chord


def test_real_files_match_their_svg_text():
    paths = sample_paths()
    assert len(paths) == len(SAMPLE_FILES)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        starts = np.array(_START.findall(text), dtype=float)
        strokes, types = kanjivg.parse_svg(text)
        assert len(strokes) == len(starts) == text.count("<path ")
        np.testing.assert_allclose([s[0] for s in strokes], starts, atol=1e-3)
        assert len(types) == len(strokes)
        for s in strokes:
            assert s.dtype == np.float32 and len(s) >= 2
            assert np.all((s > 0) & (s < 109))
    strokes, types = kanjivg.parse_svg((kanjivg.kanji_dir() / "04e00.svg").read_text())
    assert types == ["㇐"]
    # d="M11,54.25c3.19,0.62,6.25,0.75,9.73,0.5c20.64-1.5,50.39-5.12,68.58-5.24c3.6-0.02,5.77,0.24,7.57,0.49"
    # ends at the start plus the three relative end points.
    np.testing.assert_allclose(strokes[0][-1], [11 + 9.73 + 68.58 + 7.57, 54.25 + 0.5 - 5.24 + 0.49], atol=1e-4)


# ---- cache ---------------------------------------------------------------------------------


def test_cache_round_trip(tmp_path, small_source, monkeypatch):
    built = kanjivg.load_corpus(tmp_path / "cache", small_source)
    assert len(built.names) == len(sample_paths())
    npzcache.forget()
    monkeypatch.setattr(kanjivg, "parse_folder", lambda folder: pytest.fail("cache was not used"))
    loaded = kanjivg.load_corpus(tmp_path / "cache", small_source)
    for key, value in built.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[key], value)


def corrupt_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_flip(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def make_stale(path, corpus):
    key = dict(kanjivg._source_key(kanjivg.kanji_dir()), parser_version=kanjivg.PARSER_VERSION - 1)
    kanjivg.write_cache(path, corpus, key)


@pytest.mark.parametrize("damage", ["truncate", "flip", "stale", "new_file"])
def test_bad_cache_is_rebuilt_with_warning(tmp_path, small_source, caplog, damage):
    cache = tmp_path / "cache"
    built = kanjivg.load_corpus(cache, small_source)
    path = kanjivg.cache_path(cache)
    if damage == "truncate":
        corrupt_truncate(path)
    elif damage == "flip":
        corrupt_flip(path)
    elif damage == "stale":
        make_stale(path, built)
    else:  # the source folder changed: one more file
        shutil.copy(kanjivg.kanji_dir() / "04e01.svg", small_source)
    npzcache.forget()
    with caplog.at_level(logging.WARNING, logger=kanjivg.__name__):
        rebuilt = kanjivg.load_corpus(cache, small_source)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    expected = len(built.names) + (damage == "new_file")
    assert len(rebuilt.names) == expected
    npzcache.forget()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=kanjivg.__name__):
        kanjivg.load_corpus(cache, small_source)  # the rewritten cache is good again
    assert not caplog.records


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(kanjivg.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install kanjivg"):
        kanjivg.kanji_dir()


# ---- full corpus and split -----------------------------------------------------------------


@pytest.fixture(scope="module")
def full_cache():
    """The whole corpus in the user cache the documented commands use (parsed there once per
    machine, 10-50 s, and shared with the subprocess tests rather than parsed twice); building
    and rebuilding a cache from scratch is tested on a small folder above."""
    cache = kanjivg.cache_path().parent
    npzcache.forget()
    kanjivg.load_corpus(cache)
    yield cache
    npzcache.forget()


def test_full_corpus_and_fast_reload(full_cache):
    npzcache.forget()
    t0 = time.perf_counter()
    corpus = kanjivg.load_corpus(full_cache)
    assert time.perf_counter() - t0 < 5.0  # read from the cache: parsing the SVG files takes 10-50 s
    n_files = len(list(kanjivg.kanji_dir().glob("*.svg")))
    assert len(corpus.names) == n_files
    n_paths = len(corpus.stroke_types)
    assert len(corpus.stroke_offsets) == n_paths + 1 and corpus.glyph_offsets[-1] == n_paths
    assert 10 < n_paths / n_files < 15  # ~12.7 strokes per glyph
    assert corpus.points.min() > 0 and corpus.points.max() < 109


def codepoints(source: KanjiVGStrokes) -> set:
    return {kanjivg.codepoint(source.name(i)) for i in range(len(source))}


def test_split_is_disjoint_deterministic_and_sized(full_cache):
    splits = {s: KanjiVGStrokes(s, 0.1, 0.05, str(full_cache)) for s in ("train", "val", "test")}
    cps = {s: codepoints(d) for s, d in splits.items()}
    assert not (cps["train"] & cps["val"]) and not (cps["train"] & cps["test"]) and not (cps["val"] & cps["test"])
    total = sum(len(c) for c in cps.values())
    assert abs(len(cps["val"]) / total - 0.1) < 0.02 and abs(len(cps["test"]) / total - 0.05) < 0.015
    assert sum(len(d) for d in splits.values()) == len(kanjivg.load_corpus(full_cache).names)
    # Variants travel with their base codepoint.
    names = {s: {d.name(i) for i in range(len(d))} for s, d in splits.items()}
    for split, members in names.items():
        assert all(kanjivg.codepoint(n) in cps[split] for n in members)
    again = KanjiVGStrokes("val", 0.1, 0.05, str(full_cache))
    assert [again.name(i) for i in range(len(again))] == [splits["val"].name(i) for i in range(len(again))]
    # Changing the test share never moves glyphs into or out of val.
    assert codepoints(KanjiVGStrokes("val", 0.1, 0.2, str(full_cache))) == cps["val"]


def test_glyphs_are_unit_coordinate_views(full_cache):
    data = KanjiVGStrokes("train", 0.05, 0.05, str(full_cache))
    glyph = data.glyph(0, np.random.default_rng(0))
    assert len(glyph) == len(data.stroke_types(0)) >= 1
    for s in glyph:
        assert s.dtype == np.float32 and s.ndim == 2 and s.shape[1] == 2
        assert np.all((s > 0) & (s < 1))
        with pytest.raises(ValueError):
            s[0, 0] = 0.5  # shared with every other user: read-only


@pytest.mark.slow
def test_two_processes_building_the_cache_at_once_leave_one_valid_cache(tmp_path):
    """Two runs started together both parse the full corpus and write the cache at the same
    time: each write is a private temp file renamed into place, so both get the same corpus
    and the cache left behind reads back without a rebuild."""
    import subprocess
    import sys

    code = (
        "import sys; from inktrace_train.data import kanjivg as k; "
        "c = k.load_corpus(cache_dir=sys.argv[1]); print(k._digest(c.arrays()))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert outs[0][0] == outs[1][0] and outs[0][0].strip()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    reread = kanjivg.read_cache(kanjivg.cache_path(tmp_path), kanjivg._source_key(kanjivg.kanji_dir()))
    assert kanjivg._digest(reread.arrays()) == outs[0][0].strip()

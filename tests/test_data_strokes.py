"""Your own stroke data: the SVG, InkML and NDJSON readers, normalisation, the split by key,
the per-file cache, skipped input, custom sources, and `check` as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO
from inktrace_train.data import kanjivg, npzcache, strokes
from inktrace_train.data.custom import CustomSource
from inktrace_train.data.formats import inkml, svg, xml
from inktrace_train.data.glyphs import DataError, split_of_key
from inktrace_train.data.strokes import StrokeFiles

FIXTURES = REPO / "tests/data/strokes"


@pytest.fixture()
def ink(tmp_path):
    """A copy of the fixture folder (tests may break files in it) and a private cache folder."""
    folder = tmp_path / "ink"
    shutil.copytree(FIXTURES, folder)
    npzcache.forget()
    yield folder, tmp_path / "cache"
    npzcache.forget()


def glyphs_by_key(stroke_set):
    a = stroke_set.arrays
    so, go = a["stroke_offsets"], a["glyph_offsets"]
    return {
        str(a["keys"][g]): [a["points"][so[s] : so[s + 1]] for s in range(go[g], go[g + 1])] for g in stroke_set.usable
    }


# ---- readers and normalisation ---------------------------------------------------------------


def test_svg_viewbox_nested_transforms_lines_and_polylines(ink):
    folder, cache = ink
    g = glyphs_by_key(strokes.load(folder, cache))
    plus = g["svg/plus.svg"]  # viewBox 0 0 100 100: divide by 100
    np.testing.assert_allclose(plus[0], [[0.2, 0.5], [0.8, 0.5]], atol=1e-6)
    np.testing.assert_allclose(plus[1], [[0.5, 0.2], [0.5, 0.5], [0.5, 0.8]], atol=1e-6)
    # arch.svg: (x, y) -> (2x + 10, 2y) on a 120 x 100 page, centred in a 120-unit square (+10 in y).
    arch = g["svg/nested/arch.svg"]
    np.testing.assert_allclose(arch[0][[0, -1]], [[20 / 120, 100 / 120], [100 / 120, 100 / 120]], atol=1e-6)
    np.testing.assert_allclose(arch[1], [[20 / 120, 70 / 120], [100 / 120, 70 / 120]], atol=1e-6)
    assert arch[0][:, 1].min() < 60 / 120  # the curve bulges up: flattened, not a chord
    assert len(arch) == 2  # the path inside <defs> is not a stroke
    # tilde.svg has no viewBox: width/height (64px x 32px) make the page, centred in y (+16); the
    # dot rotated about itself stays at (32, 28).
    np.testing.assert_allclose(g["svg/tilde.svg"][1], [[0.5, 44 / 64], [0.5, 44 / 64]], atol=1e-6)


def test_transforms_compose_like_svg():
    m = svg.parse_transform("translate(10,20) rotate(90) scale(2 3)")
    np.testing.assert_allclose(m @ [1, 1, 1], [10 - 3, 20 + 2, 1], atol=1e-12)
    np.testing.assert_allclose(svg.parse_transform("rotate(180 5 5)") @ [0, 0, 1], [10, 10, 1], atol=1e-12)
    np.testing.assert_allclose(svg.parse_transform("skewX(45)") @ [0, 1, 1], [1, 1, 1], atol=1e-12)
    for bad in ("translate(1,2", "wobble(3)", "scale()", "matrix(1 2 3)"):
        with pytest.raises(ValueError):
            svg.parse_transform(bad)


def test_kanjivg_files_load_through_the_general_reader(ink, tmp_path):
    """A folder of KanjiVG files is a stroke folder like any other, with KanjiVG's own coordinates."""
    folder = tmp_path / "kvg"
    folder.mkdir()
    for name in ("04e00.svg", "06f22.svg", "04e14-Kaisho.svg"):
        shutil.copy(kanjivg.kanji_dir() / name, folder)
    g = glyphs_by_key(strokes.load(folder, tmp_path / "cache"))
    for name in ("04e00.svg", "06f22.svg"):
        expected, _ = kanjivg.parse_svg((folder / name).read_text())
        assert len(g[name]) == len(expected)
        for ours, theirs in zip(g[name], expected, strict=True):
            np.testing.assert_allclose(ours, theirs / 109.0, atol=1e-6)


def test_inkml_groups_labels_channels_and_differences(ink):
    folder, cache = ink
    s = StrokeFiles("train", 0.01, 0.0, str(folder), str(cache))
    labels = {s.name(i): s.label(i) for i in range(len(s))}
    assert {k: v for k, v in labels.items() if k.startswith("inkml/expression")} == {
        "inkml/expression.inkml#0": "x",
        "inkml/expression.inkml#1": "+",
        "inkml/expression.inkml#2": "1",
    }  # the outer group holds no trace itself: it is not a glyph
    assert labels["inkml/tee.inkml"] == "T"
    g = glyphs_by_key(s.set)
    # tee.inkml declares Y before X; its second trace is written in first and second differences.
    bar, stem = g["inkml/tee.inkml"]
    np.testing.assert_allclose(bar[:, 1], 0.3125, atol=1e-6)  # y = 10 on an 80-wide glyph centred in y
    np.testing.assert_allclose(stem[:, 0], 0.5, atol=1e-6)
    np.testing.assert_allclose(np.diff(stem[:, 1]), 10 / 80, atol=1e-6)  # the velocity 10 carries on
    assert inkml.parse_points("1 2 3, 4 5 6", ["T", "X", "Y"]).tolist() == [[2, 3], [5, 6]]
    assert inkml.parse_points("1 2, '1 '1, * *", ["X", "Y"]).tolist() == [[1, 2], [2, 3], [3, 4]]
    with pytest.raises(ValueError, match="no X and Y"):
        inkml.parse_points("1 2", ["X", "T"])


def test_ndjson_keys_labels_quickdraw_names_and_dots(ink):
    folder, cache = ink
    s = StrokeFiles("train", 0.01, 0.0, str(folder), str(cache))
    labels = {s.name(i): s.label(i) for i in range(len(s))}
    assert labels["cat-0001"] == "cat" and labels["5678"] == "zigzag"  # key, else Quick, Draw!'s key_id
    assert labels["ndjson/doodles.ndjson:2"] == "line"  # no key: file and line number (blank line 4 skipped)
    dot = glyphs_by_key(s.set)["ndjson/doodles.ndjson:5"][1]
    assert dot.shape == (2, 2) and np.array_equal(dot[0], dot[1])  # a one-point stroke is a dot
    line = glyphs_by_key(s.set)["ndjson/doodles.ndjson:2"][0]
    np.testing.assert_allclose(line, [[0, 0.5], [1, 0.5]])  # bounding box fitted, centred, aspect kept


def test_split_is_by_key_stable_and_disjoint(ink, tmp_path):
    folder, cache = ink
    splits = {sp: StrokeFiles(sp, 0.3, 0.2, str(folder), str(cache)) for sp in ("train", "val")}
    names = {sp: {s.name(i) for i in range(len(s))} for sp, s in splits.items()}
    assert not (names["train"] & names["val"]) and len(names["val"]) >= 1
    for sp, members in names.items():
        assert all(split_of_key(k, 0.3, 0.2) == sp for k in members)
    rest = set(glyphs_by_key(splits["train"].set)) - names["train"] - names["val"]
    assert all(split_of_key(k, 0.3, 0.2) == "test" for k in rest)
    # Moving the folder keeps every split: keys are relative to data.path.
    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved)
    again = StrokeFiles("val", 0.3, 0.2, str(moved), str(cache))
    assert {again.name(i) for i in range(len(again))} == names["val"]


# ---- cache -----------------------------------------------------------------------------------


def test_cache_is_reused_and_only_changed_files_are_parsed(ink, monkeypatch):
    folder, cache = ink
    first = strokes.load(folder, cache)
    npzcache.forget()
    parsed = []
    real = strokes.parse_file
    monkeypatch.setattr(strokes, "parse_file", lambda p, *a: parsed.append(p.name) or real(p, *a))
    again = strokes.load(folder, cache)
    assert parsed == [] and len(again.usable) == len(first.usable)
    with open(folder / "ndjson/doodles.ndjson", "a") as f:
        f.write('{"key": "new", "strokes": [[[0, 1], [0, 1]]]}\n')
    npzcache.forget()
    grown = strokes.load(folder, cache)
    assert parsed == ["doodles.ndjson"] and len(grown.usable) == len(first.usable) + 1


def test_a_file_that_turns_bad_keeps_its_cached_glyphs(ink, caplog):
    folder, cache = ink
    before = glyphs_by_key(strokes.load(folder, cache))
    path = folder / "inkml/expression.inkml"
    path.write_bytes(path.read_bytes()[:300])  # truncated mid-write, say
    npzcache.forget()
    after = strokes.load(folder, cache)
    assert set(glyphs_by_key(after)) == set(before)
    (skip,) = after.skips
    assert skip.where == "inkml/expression.inkml" and skip.reason == "unparseable file"
    assert "using its 3 glyphs cached before" in skip.detail
    path.unlink()  # a file removed on purpose is gone
    npzcache.forget()
    assert not any(k.startswith("inkml/expression") for k in glyphs_by_key(strokes.load(folder, cache)))


def test_a_line_file_cut_short_keeps_its_cached_glyphs_and_a_new_one_keeps_its_whole_lines(ink):
    """An NDJSON copy cut mid-line reads its whole lines, but that is not the file: while a
    version of it was cached, that version is used (37 of 40 glyphs vanished silently before)."""
    folder, cache = ink
    before = glyphs_by_key(strokes.load(folder, cache))
    path = folder / "ndjson/doodles.ndjson"
    whole = path.read_bytes()
    path.write_bytes(whole[: whole.index(b"\n") + 30])  # the first line, and 30 bytes of the second
    npzcache.forget()
    after = strokes.load(folder, cache)
    assert set(glyphs_by_key(after)) == set(before)
    (skip,) = [s for s in after.skips if s.where.startswith("ndjson/doodles")]
    assert skip.reason == "file cut short" and "using its 4 glyphs cached before" in skip.detail
    fresh = folder.parent / "fresh"  # never cached: its whole first line is read, the cut one skipped
    fresh.mkdir()
    (fresh / "doodles.ndjson").write_bytes(whole[: whole.index(b"\n") + 30])
    first = strokes.load(fresh, cache)
    assert len(first.usable) == 1 and [s.reason for s in first.skips] == ["file cut short"]
    # A whole last record without a final newline (as editors save) is read as a line, bad or good.
    (fresh / "doodles.ndjson").write_bytes(whole.rstrip(b"\n") + b'\n{"strokes": [[[true], [0]]]}')
    npzcache.forget()
    edited = strokes.load(fresh, cache)
    assert [s.reason for s in edited.skips if "cut short" in s.reason] == []
    assert "unparseable line" in [s.reason for s in edited.skips]


def test_corrupt_cache_is_rebuilt_with_a_warning(ink, caplog):
    folder, cache = ink
    n = len(strokes.load(folder, cache).usable)
    (path,) = cache.glob("strokes-*.npz")
    path.write_bytes(path.read_bytes()[:1000])
    npzcache.forget()
    assert len(strokes.load(folder, cache).usable) == n
    assert "unusable" in caplog.text and "rebuilding" in caplog.text


# ---- bad input -------------------------------------------------------------------------------

BROKEN = {
    "broken/truncated.svg": '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><path d="M0,0 L1',
    "broken/arc.svg": '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0,0 A5,5 0 0 1 10,0"/></svg>',
    "broken/dot.svg": '<svg xmlns="http://www.w3.org/2000/svg"><line x1="3" y1="3" x2="3" y2="3"/></svg>',
    "broken/bomb.svg": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    '<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>',
    "broken/external.inkml": '<?xml version="1.0"?><!DOCTYPE ink [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<ink xmlns="http://www.w3.org/2003/InkML"><trace>&x;</trace></ink>',
    "broken/nan.inkml": '<ink xmlns="http://www.w3.org/2003/InkML"><trace>0 0, ? 1</trace></ink>',
    "broken/empty.inkml": '<ink xmlns="http://www.w3.org/2003/InkML"><trace> </trace><trace>0 0, 5 5</trace></ink>',
    "broken/lines.ndjson": '{"strokes": [[[0, 1e999], [0, 1]]]}\n'
    "not json\n"
    '{"key": "cat-0001", "strokes": [[[0, 1], [0, 1]]]}\n'
    '{"strokes": [[[0, 1], ["a", 1]]]}\n'
    '{"strokes": [[[5, 5], [5, 5]]]}\n' + "[" * 100000 + "\n",
}


def write_broken(folder):
    for name, text in BROKEN.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_bad_input_is_skipped_counted_and_never_stops_the_good(ink):
    folder, cache = ink
    write_broken(folder)
    s = strokes.load(folder, cache)
    reasons = {(k.where, k.reason) for k in s.skips}
    assert reasons == {
        ("broken/arc.svg", "unparseable file"),
        ("broken/bomb.svg", "unparseable file"),
        ("broken/dot.svg", "degenerate glyph"),
        ("broken/external.inkml", "unparseable file"),
        ("broken/empty.inkml", "empty stroke"),
        ("broken/nan.inkml", "unreadable trace"),
        ("broken/truncated.svg", "unparseable file"),
        ("broken/lines.ndjson:1", "non-finite coordinate"),
        ("broken/lines.ndjson:2", "unparseable line"),
        ("ndjson/doodles.ndjson:1", "duplicate key"),  # the first in path order is kept
        ("broken/lines.ndjson:4", "unparseable line"),
        ("broken/lines.ndjson:5", "degenerate glyph"),
        ("broken/lines.ndjson:6", "unparseable line"),
    }
    assert "EntitiesForbidden" in next(k.detail for k in s.skips if k.where == "broken/bomb.svg")
    assert len(s.usable) == 11 + 1  # every good glyph, and empty.inkml's good trace
    assert "skipped 13: 4 unparseable file, 3 unparseable line, 2 degenerate glyph" in s.summary()


def test_a_source_with_nothing_usable_is_refused_in_one_line(tmp_path):
    (tmp_path / "bad.ndjson").write_text("nope\n")
    npzcache.forget()
    with pytest.raises(DataError, match=r"^data.path=\S+bad.ndjson: no usable glyph \(0 glyphs .*1 unparseable line"):
        strokes.load(tmp_path / "bad.ndjson", tmp_path / "cache")
    with pytest.raises(DataError, match="no such file or folder"):
        strokes.load(tmp_path / "missing", tmp_path / "cache")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"not a stroke file \(allowed: .inkml, .jsonl, .ndjson, .svg\)"):
        strokes.load(tmp_path / "notes.txt", tmp_path / "cache")


def test_xml_nesting_is_bounded():
    deep = "<svg>" + "<g>" * (xml.MAX_DEPTH + 5) + "</g>" * (xml.MAX_DEPTH + 5) + "</svg>"
    with pytest.raises(ValueError, match="nested deeper"):
        svg.read_strokes(xml.parse_bytes(deep.encode()))


# ---- custom sources --------------------------------------------------------------------------


class Squares:
    """Glyph i: a square of side i + 1, and its diagonal; glyph 3 is broken (NaN)."""

    def __init__(self, n: int = 40):
        self.n = n

    def __len__(self):
        return self.n

    def glyph(self, i):
        s = i + 1.0
        if i == 3:
            return [[[0, 0], [np.nan, 1]]]
        return [[[0, 0], [s, 0], [s, s], [0, s], [0, 0]], np.array([[0, 0], [s, s]])]

    def name(self, i):
        return f"square-{i}"


def test_custom_source_is_split_by_name_cleaned_and_fitted(monkeypatch):
    monkeypatch.setitem(sys.modules, "my_squares", sys.modules[__name__])
    train = CustomSource("my_squares.Squares", {"n": 40}, "train", 0.25, 0.0)
    val = CustomSource("my_squares.Squares", {"n": 40}, "val", 0.25, 0.0)
    assert len(train) + len(val) == 40
    assert {train.name(i) for i in range(len(train))}.isdisjoint(val.name(i) for i in range(len(val)))
    for src in (train, val):
        for i in range(len(src)):
            glyph = src.glyph(i)
            assert glyph[0].dtype == np.float32 and np.isfinite(np.concatenate(glyph)).all()
            np.testing.assert_allclose(glyph[1], [[0, 0], [1, 1]])  # every square fitted to the unit square
    errors = {
        "my_squares.Nope": "my_squares has no class Nope",
        "no_such_module.Thing": "cannot import no_such_module",
        "my_squares.DataError": "lacks __len__, glyph, name",
    }
    for target, message in errors.items():
        with pytest.raises(DataError, match=message):
            CustomSource(target, {}, "train", 0.25, 0.0)
    with pytest.raises(DataError, match=r"my_squares.Squares: TypeError: .*unexpected keyword argument 'size'"):
        CustomSource("my_squares.Squares", {"size": 3}, "train", 0.25, 0.0)


# ---- check, as a user runs it ----------------------------------------------------------------


def test_check_reports_formats_splits_stats_skips_and_writes_a_preview(ink, tmp_path):
    folder, _ = ink
    write_broken(folder)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    proc = subprocess.run(
        [sys.executable, "-m", "inktrace_train.data", "check", str(folder), "--val-fraction", "0.3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"{folder}: 12 glyphs (inkml 5, ndjson 4, svg 3) from 14 files; skipped 13:" in out
    split = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert split["all"][-1] == "12" and sum(int(split[f][-1]) for f in ("svg", "inkml", "ndjson")) == 12
    assert "strokes per glyph: min 1, median 2, max 2" in out
    assert "points per stroke: min 2, median 2, max 40" in out  # arch.svg's curve, flattened
    assert "skipped 13:\n" in out
    assert "  broken/bomb.svg: unparseable file: refused unsafe XML: EntitiesForbidden" in out
    assert "  ndjson/doodles.ndjson:1: duplicate key: 'cat-0001' first at broken/lines.ndjson:3" in out
    assert "Traceback" not in proc.stderr
    import cv2

    image = cv2.imread(str(tmp_path / "strokes_preview.png"))
    assert image is not None and image.shape[0] > 3 * 128 and image.std() > 10
    bad = subprocess.run(
        [sys.executable, "-m", "inktrace_train.data", "check", str(folder / "broken/nan.inkml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 1 and bad.stderr.strip().endswith("nan.inkml: no usable glyph")
    assert len(bad.stderr.strip().splitlines()) == 1 and "  nan.inkml: unreadable trace: missing value" in bad.stdout


def test_check_survives_names_opencv_cannot_draw_and_refuses_a_preview_it_cannot_write(tmp_path):
    """A file name of undecodable bytes and an NDJSON key with a lone surrogate (valid JSON) used
    to crash OpenCV's text drawing (a segfault); a preview name without .png was a traceback."""
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(FIXTURES / "svg/plus.svg", os.path.join(os.fsencode(folder), b"bad\xffname.svg"))
    (folder / "lines.ndjson").write_text('{"key": "\\ud800x", "strokes": [[[0, 90], [10, 80]]]}\n')
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))

    def check(*args):
        command = [sys.executable, "-m", "inktrace_train.data", "check", "odd", "--val-fraction", "0.5", *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)

    proc = check()
    assert proc.returncode == 0, proc.stderr
    assert "2 glyphs" in proc.stdout and (tmp_path / "strokes_preview.png").is_file()
    bad = check("--preview", "grid")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "inktrace-data: error: --preview grid: name a .png file (or --samples 0 for no preview)"
    )
    none = check("--samples", "0", "--preview", "none.png")
    assert none.returncode == 0 and not (tmp_path / "none.png").exists() and "preview" not in none.stdout


def test_a_cache_folder_that_cannot_be_written_is_a_warning_not_a_failure(ink, caplog, monkeypatch):
    """data.cache_dir under a file (or read-only, or a full disk): training went down with a
    traceback from mkdir; the strokes are read all the same, and parsed again next time."""
    from inktrace_train.run.atomic import WriteError

    folder, _ = ink
    (folder.parent / "a_file").write_text("")
    loaded = strokes.load(folder, folder.parent / "a_file" / "cache")
    assert len(loaded.usable) == len(strokes.load(folder, folder.parent / "cache").usable) > 0
    assert "cannot write the cache" in caplog.text and "set data.cache_dir to a writable folder" in caplog.text

    def full_disk(path, write):  # the folder is there; the temp file's write fails
        raise WriteError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(npzcache, "write_temp", full_disk)
    caplog.clear()
    npzcache.forget()
    assert len(strokes.load(folder, folder.parent / "full").usable) == len(loaded.usable)
    assert "cannot write the cache" in caplog.text and "No space left on device" in caplog.text


def test_hidden_files_and_folders_are_not_searched(ink):
    """A notebook's .ipynb_checkpoints copy was a second glyph with a key of its own."""
    folder, cache = ink
    n = len(strokes.load(folder, cache).usable)
    (folder / "svg/.ipynb_checkpoints").mkdir()
    shutil.copy(folder / "svg/plus.svg", folder / "svg/.ipynb_checkpoints/plus-checkpoint.svg")
    shutil.copy(folder / "svg/plus.svg", folder / "svg/._plus.svg")
    npzcache.forget()
    assert len(strokes.load(folder, cache).usable) == n


def test_ndjson_true_and_false_are_not_coordinates():
    from inktrace_train.data.formats.ndjson import parse_strokes

    assert parse_strokes([[[0, 1.5], [2, 3]]])[0].tolist() == [[0, 2], [1.5, 3]]
    with pytest.raises(ValueError, match="coordinates must be numbers"):
        parse_strokes([[[True, False], [0, 1]]])  # JSON true/false: a bool is an int in Python


def test_an_svg_line_with_units_names_the_attribute(tmp_path):
    (tmp_path / "unit.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><line x1="1cm" y1="0" x2="5" y2="5"/>'
        '<line x1="0" y1="0" x2="9" y2="9"/></svg>'
    )
    npzcache.forget()
    loaded = strokes.load(tmp_path, tmp_path / "cache", require_usable=False)
    assert [s.detail for s in loaded.skips] == ["<line x1='1cm'>: a coordinate must be a plain number (no units)"]

"""The out-of-distribution fonts set: `evaluate --set fonts` on the bundled font sample, the fonts
found in a folder or a packed .tgz, rendering through the image rule, and the count scores."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest

from helpers import REPO, cli, run_cli
from inktrace_train.errors import UserError
from inktrace_train.evaluation.imaging import place, read_ink
from test_predict import checkpoint  # noqa: F401  (the tiny full-heads checkpoint fixture)

pytest.importorskip("fontTools", reason='the fonts set needs the eval extra (pip install -e ".[eval]")')

from inktrace_train.data.fonts import FETCH, FETCH_VAL, FONTS, VAL_FONTS, find_fonts, twin_of
from inktrace_train.evaluation.fontset import count_scores, font_glyphs

SAMPLE = REPO / "tests" / "data" / "fonts"  # 3 test-split characters of each font (SOURCE.md)
HANZI_SAMPLE = REPO / "tests" / "data" / "hanzi"
JAPANESE = [f.name for f in FONTS if f.language == "ja"]
SHARES = ("count_exact", "count_within_1", "ink_recall")


def test_evaluate_scores_every_font_for_the_model_and_the_classical_rows(checkpoint, tmp_path):  # noqa: F811
    args = [str(checkpoint), "--set", "fonts", "--fonts-dir", str(SAMPLE), "--hanzi-dir", str(HANZI_SAMPLE)]
    proc = run_cli([*args, "--n", "3", "--json", "f.json"], cwd=tmp_path, module="inktrace_train.evaluate")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "f.json").read_text())
    classical = ["skeletonize", "thin", "thin, Otsu", "thin, median + Otsu"]
    methods = ["model"] + (classical if importlib.util.find_spec("skimage") else [])
    places = [f"fonts/{f.name}" for f in FONTS] + ["fonts"]
    assert set(rows) == {f"{m}@{p}" for m in methods for p in places}
    for name, values in rows.items():
        assert values["glyphs"] == (3 * len(FONTS) if name.endswith("@fonts") else 3), name
        assert 0 <= values["count_error"] <= 40 and values["traced_true_ratio"] >= 0, (name, values)
        assert all(0 <= values[k] <= 1 for k in SHARES), (name, values)
        assert values["count_within_1"] >= values["count_exact"], name
    # the overall row pools the fonts: its error is the mean of theirs (same glyph count each)
    per_font = [rows[f"model@fonts/{f.name}"]["count_error"] for f in FONTS]
    assert rows["model@fonts"]["count_error"] == pytest.approx(np.mean(per_font))
    if "thin@fonts" in rows:  # the classical skeleton traced losslessly covers its own ink
        assert rows["thin@fonts"]["ink_recall"] > 0.95
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| font | style | method |"))
    assert "count err" in header and "within 1" in header and "traced/true" in header and "ink recall" in header
    assert any(line.startswith("| klee-one | pen handwriting | model |") for line in lines)
    assert any(line.startswith("| overall |  | model |") for line in lines)
    assert "| method | set |" not in proc.stdout  # the other sets' table is not printed empty


def test_all_sets_include_the_fonts_when_a_fonts_dir_is_given(checkpoint, tmp_path):  # noqa: F811
    args = [str(checkpoint), "--fonts-dir", str(SAMPLE), "--hanzi-dir", str(HANZI_SAMPLE), "--n", "1"]
    proc = run_cli([*args, "--json", "a.json"], cwd=tmp_path, module="inktrace_train.evaluate")
    assert proc.returncode == 0, proc.stderr
    places = {k.split("@", 1)[1] for k in json.loads((tmp_path / "a.json").read_text())}
    assert places == {"clean", "scan", "brush", "fonts"} | {f"fonts/{f.name}" for f in FONTS}
    assert "| method | set |" in proc.stdout and "| font | style | method |" in proc.stdout
    assert "| model | fonts" not in proc.stdout  # the fonts rows stay out of the other sets' table


def test_chinese_fonts_need_the_hanzi_data_and_say_so(checkpoint, tmp_path):  # noqa: F811
    args = [str(checkpoint), "--set", "fonts", "--fonts-dir", str(SAMPLE), "--n", "1", "--json", "f.json"]
    proc = cli([*args, "--workers", "0"], cwd=tmp_path, module="inktrace_train.evaluate")  # in this process
    assert proc.returncode == 0, proc.stderr
    assert "ma-shan-zheng (Chinese) is scored on hanzi-writer-data: it needs --hanzi-dir" in proc.stdout
    fonts = {k.split("/", 1)[1] for k in json.loads((tmp_path / "f.json").read_text()) if "/" in k}
    assert fonts == set(JAPANESE)


@pytest.mark.parametrize(
    "make,args,expected",
    [
        (None, ["--fonts-dir", "nowhere"], f"--fonts-dir nowhere: no such folder (get the fonts: `{FETCH}`)"),
        ("empty", ["--fonts-dir", "empty"], f"--fonts-dir empty: none of the set's fonts there (get them: `{FETCH}`)"),
        (None, [], f"the fonts set needs --fonts-dir DIR (get the fonts: `{FETCH}`)"),
    ],
)
def test_bad_fonts_dirs_are_one_line_with_the_fetch_command(checkpoint, tmp_path, make, args, expected):  # noqa: F811
    if make:
        (tmp_path / make).mkdir()
        (tmp_path / make / "notes.txt").write_text("no fonts here")
    proc = cli([str(checkpoint), "--set", "fonts", *args], cwd=tmp_path, module="inktrace_train.evaluate")
    assert proc.returncode == 1 and proc.stderr.strip() == f"inktrace_train.evaluate: error: {expected}"


def test_a_character_the_font_lacks_is_skipped():
    packages, notes = find_fonts(SAMPLE)
    assert [p.font.name for p in packages] == [f.name for f in FONTS] and notes == []
    klee = next(p for p in packages if p.font.name == "klee-one")
    characters = [("褌", 14), ("泗", 8), ("乐", 5), ("半", 5)]  # the sample holds 泗, 弁 and 半 only
    assert klee.render("褌") is None and klee.file_of("褌") is None
    glyphs = font_glyphs(klee, characters, n=10, size=64)
    assert [(g.char, g.true_count) for g in glyphs] == [("泗", 8), ("半", 5)]
    assert [g.char for g in font_glyphs(klee, characters, n=1, size=64)] == ["泗"]


def test_a_rendered_character_reads_back_through_the_image_rule(tmp_path):
    klee = next(p for p in find_fonts(SAMPLE)[0] if p.font.name == "klee-one")
    image = klee.render("弁")
    assert image.dtype == np.uint8 and image.shape == (192, 192)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    assert border.min() == 255 and image.min() < 64  # dark ink on white paper, inside the image
    (glyph,) = font_glyphs(klee, [("弁", 5)], n=1, size=64)
    canvas = glyph.canvas
    ys, xs = np.nonzero(canvas > 0.1)
    assert canvas.max() > 0.9 and canvas[0, 0] == 0  # ink is bright, the paper empty
    assert 52 <= max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 56  # the longer side is 85 % of 64
    cv2.imwrite(str(tmp_path / "g.png"), image)  # what predict would read from the file
    assert np.array_equal(canvas, place(read_ink(tmp_path / "g.png"), 64)[0])


def test_packed_packages_read_as_the_folders_do(tmp_path):
    """What `npm pack` writes (package/... inside a .tgz), beside a package the set does not use."""
    for font in ("klee-one", "zhi-mang-xing"):
        with tarfile.open(tmp_path / f"fontsource-{font}-5.3.0.tgz", "w:gz") as tar:
            tar.add(SAMPLE / font, arcname="package")
    other = tmp_path / "other"
    other.mkdir()
    (other / "package.json").write_text(json.dumps({"name": "@fontsource/other", "version": "1.0.0"}))
    packages, notes = find_fonts(tmp_path)
    assert [p.font.name for p in packages] == ["klee-one", "zhi-mang-xing"]
    assert notes[0].startswith("other: not one of the set's fonts")
    assert "not in" in notes[1] and "zen-maru-gothic" in notes[1] and FETCH in notes[1]
    folder = next(p for p in find_fonts(SAMPLE)[0] if p.font.name == "zhi-mang-xing")
    assert np.array_equal(packages[1].render("万"), folder.render("万"))
    assert b"SIL Open Font License" in packages[0].license


def test_the_count_scores_on_hand_made_numbers():
    glyphs = [  # traced, true, ink traced, ink total
        (5, 5, 40, 40),
        (6, 5, 30, 40),
        (3, 5, 20, 20),
        (10, 8, 0, 0),
    ]
    keys = ("n_traced", "n_true", "ink_traced", "ink_total")
    glyphs = [(*g, g[2] // 2) for g in glyphs]  # ink_traced_2px: half of what the pen covers
    keys += ("ink_traced_2px",)
    per_glyph = [dict(zip(keys, map(float, g), strict=True)) for g in glyphs]
    scores = count_scores(per_glyph)
    assert scores["glyphs"] == 4
    assert scores["count_error"] == pytest.approx((0 + 1 + 2 + 2) / 4)
    assert scores["count_exact"] == pytest.approx(1 / 4)
    assert scores["count_within_1"] == pytest.approx(2 / 4)
    assert scores["traced_true_ratio"] == pytest.approx(24 / 23)
    assert scores["ink_recall"] == pytest.approx(90 / 100)  # pooled: a glyph without ink adds nothing
    assert scores["ink_recall_2px"] == pytest.approx(45 / 100)
    assert np.isnan(count_scores([])["count_error"])


def test_the_fonts_are_documented_with_their_fetch_command():
    readme = (REPO / "docs" / "evaluation.md").read_text()
    assert FETCH in readme
    assert len(FONTS) >= 6 and len({f.style for f in FONTS}) >= 5
    for font in FONTS:
        assert f"`{font.name}`" in readme, font.name


def test_validation_fonts_are_other_fonts_of_the_same_styles():
    """Settings are chosen on VAL_FONTS (evaluate --split val), never on the test fonts."""
    assert not {f.name for f in FONTS} & {f.name for f in VAL_FONTS}
    assert len({f.style for f in VAL_FONTS}) >= 5 and {f.language for f in VAL_FONTS} == {"ja", "zh"}
    assert FETCH_VAL in (REPO / "docs" / "evaluation.md").read_text()
    with pytest.raises(UserError, match=re.escape(f"none of the set's fonts there (get them: `{FETCH_VAL}`)")):
        find_fonts(SAMPLE, "val")  # the bundled sample holds test fonts only


def test_find_fonts_refuses_a_missing_folder():
    with pytest.raises(UserError, match="no such folder"):
        find_fonts(REPO / "no-such-fonts")


@pytest.mark.parametrize("damage", [b"wOFF" + bytes(40), b"not a font at all", b""])
def test_a_damaged_font_file_is_named(tmp_path, damage):
    shutil.copytree(SAMPLE / "klee-one", tmp_path / "klee-one")
    victim = sorted((tmp_path / "klee-one" / "files").glob("*.woff"))[0]
    victim.write_bytes(damage)
    klee = find_fonts(tmp_path)[0][0]
    with pytest.raises(UserError, match=f"{victim.stem} is not a readable font"):
        klee.render("泗")


def _own_package(folder, sample: str, name: str, metadata: dict | None):
    """A copy of a bundled sample font published as another @fontsource package."""
    shutil.copytree(SAMPLE / sample, folder / name)
    (folder / name / "package.json").write_text(json.dumps({"name": f"@fontsource/{name}", "version": "1.0.0"}))
    if metadata is not None:
        (folder / name / "metadata.json").write_text(json.dumps(metadata))


def test_any_fonts_scores_every_japanese_or_chinese_package_with_its_truth(checkpoint, tmp_path):  # noqa: F811
    """Your own fonts: the language its metadata lists chooses the truth (KanjiVG, hanzi-writer-data)."""
    fonts = tmp_path / "mine"
    fonts.mkdir()
    _own_package(fonts, "klee-one", "my-hand", {"subsets": ["japanese", "latin"], "category": "handwriting"})
    _own_package(fonts, "ma-shan-zheng", "my-brush", {"subsets": ["chinese-simplified"], "category": "display"})
    _own_package(fonts, "yusei-magic", "my-korean", {"subsets": ["korean", "latin"], "category": "display"})
    _own_package(fonts, "zen-maru-gothic", "no-metadata", None)
    _own_package(fonts, "klee-one", "my-hand-too", {"subsets": ["japanese"], "category": "handwriting"})
    shutil.copytree(SAMPLE / "shippori-mincho", fonts / "shippori-mincho")  # one of the set's: its own style
    args = [str(checkpoint), "--set", "fonts", "--fonts-dir", str(fonts), "--hanzi-dir", str(HANZI_SAMPLE)]
    proc = cli([*args, "--n", "1", "--workers", "0", "--json", "f.json"], tmp_path, "inktrace_train.evaluate")
    assert proc.returncode == 0, proc.stderr  # without --any-fonts: the set's font only
    assert {k for k in json.loads((tmp_path / "f.json").read_text()) if k.startswith("model@")} == {
        "model@fonts/shippori-mincho",
        "model@fonts",
    }
    every = [*args, "--any-fonts", "--n", "2", "--workers", "0", "--json", "f.json"]
    proc = cli(every, tmp_path, "inktrace_train.evaluate")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "f.json").read_text())
    scored = ["shippori-mincho", "my-brush", "my-hand"]  # the set's first, then the others by name
    assert [k.split("/", 1)[1] for k in rows if k.startswith("model@fonts/")] == scored
    assert all(rows[f"model@fonts/{f}"]["glyphs"] == 2 for f in scored)
    assert "| my-hand | handwriting | model |" in proc.stdout
    assert "| shippori-mincho | printed serif | model |" in proc.stdout
    assert "(fonts: my-hand-too: draws the same ideographs as my-hand; passed over" in proc.stdout
    for passed_over in ("my-korean", "no-metadata"):
        assert f"(fonts: {passed_over}: no japanese or chinese subset in its metadata.json" in proc.stdout
    # the truth follows the language: the same glyphs as the sample fonts they copy
    klee, brush = (find_fonts(SAMPLE)[0][i] for i in (5, 4))
    assert [klee.font.name, brush.font.name] == ["klee-one", "ma-shan-zheng"]
    mine = {p.font.name: p for p in find_fonts(fonts, any_fonts=True)[0]}
    assert (mine["my-hand"].font.language, mine["my-brush"].font.language) == ("ja", "zh")
    assert np.array_equal(mine["my-hand"].render("泗"), klee.render("泗"))


def test_the_set_fonts_are_distinct_typefaces():
    """No font of the set draws another's ideographs (the Japanese samples share three, the Chinese three)."""
    packages = find_fonts(SAMPLE)[0]
    assert len(packages) == len(FONTS)
    for i, package in enumerate(packages):
        assert twin_of(package, packages[:i]) is None, package.font.name


def test_a_typeface_under_two_names_is_scored_once(tmp_path):
    """A family's members often share their ideographs (yuji-syuku, yuji-boku, yuji-mai): with
    --any-fonts the later name is passed over, named, so one typeface does not count twice; the
    font_twins script finds it across folders and exits 1."""
    _own_package(tmp_path / "a", "klee-one", "klee-too", {"subsets": ["japanese"], "category": "handwriting"})
    _own_package(tmp_path / "a", "yusei-magic", "yusei-too", {"subsets": ["japanese"], "category": "display"})
    shutil.copytree(SAMPLE / "klee-one", tmp_path / "a" / "klee-one")
    packages, notes = find_fonts(tmp_path / "a", any_fonts=True)
    assert [p.font.name for p in packages] == ["klee-one", "yusei-too"]
    twice = "passed over, so one typeface does not count twice"
    assert notes == [f"klee-too: draws the same ideographs as klee-one; {twice}"]
    assert len(find_fonts(tmp_path / "a", any_fonts=True, keep_twins=True)[0]) == 3
    twins = [sys.executable, str(REPO / "scripts" / "font_twins.py"), str(SAMPLE)]
    proc = subprocess.run([*twins, str(tmp_path / "a")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'a' / 'klee-one'}: is the package klee-one ({SAMPLE / 'klee-one'})"
    assert lines[1].startswith(f"{tmp_path / 'a' / 'klee-too'}: draws the same ideographs as klee-one")
    assert lines[2].startswith(f"{tmp_path / 'a' / 'yusei-too'}: draws the same ideographs as yusei-magic")
    assert lines[-1] == "3 twin(s) among 11 packages"
    proc = subprocess.run(twins, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "0 twin(s) among 8 packages", proc.stdout


def test_fonts_that_differ_in_one_sampled_ideograph_are_not_twins(monkeypatch):
    """Twins render every sampled ideograph alike: one glyph apart, or too few shared, they are two fonts."""
    klee, copy = find_fonts(SAMPLE)[0][5], find_fonts(SAMPLE)[0][5]
    assert klee.font.name == "klee-one" and twin_of(copy, [klee]) is klee
    render = copy.render

    def one_glyph_apart(char, size=192):
        image = render(char, size)
        return image if char != chr(copy.ideographs()[-1]) else np.roll(image, 1, axis=1)

    monkeypatch.setattr(copy, "render", one_glyph_apart)
    assert twin_of(copy, [klee]) is None
    monkeypatch.setattr(copy, "ideographs", lambda: klee.ideographs()[:2])  # fewer than TWIN_MIN shared
    monkeypatch.setattr(copy, "render", render)
    assert twin_of(copy, [klee]) is None


def test_any_fonts_with_no_cjk_package_names_the_folder(checkpoint, tmp_path):  # noqa: F811
    _own_package(tmp_path, "yusei-magic", "latin-only", {"subsets": ["latin"], "category": "serif"})
    args = [str(checkpoint), "--set", "fonts", "--fonts-dir", str(tmp_path), "--any-fonts"]
    proc = cli(args, tmp_path, "inktrace_train.evaluate")
    assert proc.returncode == 1
    expected = f"--fonts-dir {tmp_path}: no package of a Japanese or Chinese font there"
    expected += " (get one: `npm pack @fontsource/NAME`)"
    assert proc.stderr.strip() == f"inktrace_train.evaluate: error: {expected}"

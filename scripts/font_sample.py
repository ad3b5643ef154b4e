"""Make the tests' small font sample (tests/data/fonts) from the full fonts set: for each font of
the set, the subset files that hold the chosen characters, cut down to those characters with
fontTools' subsetter (names and licence tables kept), laid out as the npm package is (package.json,
LICENSE, files/<name>-<k>-400-normal.woff).

Run: ``python scripts/font_sample.py FONTS_DIR [--out tests/data/fonts]`` after fetching the fonts
(``inktrace_train.data.fonts.FETCH``); ``--ja`` / ``--zh`` choose the characters.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from inktrace_train.data.fonts import find_fonts

JA = "泗弁半"  # KanjiVG test-split characters (every Japanese font of the set has them)
ZH = "乐侬万"  # test-split characters of the hanzi-writer-data sample in tests/data/hanzi


def cut(data: bytes, chars: str) -> bytes:
    """A WOFF font holding only ``chars`` of ``data`` (with .notdef, names and the OS/2 table)."""
    options = subset.Options()
    options.flavor = "woff"
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    font = TTFont(io.BytesIO(data))
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(font)
    out = io.BytesIO()
    font.flavor = "woff"
    font.save(out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fonts_dir")
    parser.add_argument("--out", default="tests/data/fonts")
    parser.add_argument("--ja", default=JA)
    parser.add_argument("--zh", default=ZH)
    args = parser.parse_args()
    packages, _ = find_fonts(args.fonts_dir)
    for package in packages:
        chars = args.ja if package.font.language == "ja" else args.zh
        folder = Path(args.out) / package.font.name
        (folder / "files").mkdir(parents=True, exist_ok=True)
        by_file: dict = {}
        for char in chars:
            name = package.file_of(char)
            if name is None:
                raise SystemExit(f"{package.font.name} lacks {char}: choose other characters")
            by_file.setdefault(name, "")
            by_file[name] += char
        for name, held in by_file.items():
            (folder / "files" / f"{name}.woff").write_bytes(cut(package.files[name], held))
        meta = {"name": f"@fontsource/{package.font.name}", "version": package.font.version, "license": "OFL-1.1"}
        (folder / "package.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "LICENSE").write_bytes(package.license)
        print(f"{package.font.name}: {chars} in {len(by_file)} file(s)")


if __name__ == "__main__":
    main()

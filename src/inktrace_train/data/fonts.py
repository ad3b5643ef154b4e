"""CJK fonts for the out-of-distribution test set (``evaluate --set fonts``): the @fontsource npm
packages of :data:`FONTS`, found in a folder, each character rendered with Pillow as dark ink on
light paper, and the test-split characters with their true stroke counts.

An @fontsource package splits a font into ~100 subset files by unicode range, as WOFF and WOFF2,
one set per weight (``files/<id>-<k>-400-normal.woff``). We read the regular weight's WOFF files
(zlib: their cmaps load lazily and they convert to TrueType in ~4 ms, against ~50 ms for WOFF2;
WOFF2 is read when a package has no WOFF), find the file whose cmap holds a character, and convert
that file once per process with fontTools, so Pillow's FreeType needs no WOFF support of its own.

Ground truth: Japanese fonts are scored on KanjiVG's test split, Chinese fonts on
hanzi-writer-data's (the same codepoint hash: never trained or validated on). Only ideographs and
kana count: a font's Latin letters are its own shapes ('a' with one storey or two), so KanjiVG's
stroke count is not theirs.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from fontTools.ttLib import TTFont, TTLibError
from PIL import Image, ImageDraw, ImageFont

from inktrace_train.data.hanzi import HanziStrokes
from inktrace_train.data.kanjivg import DataError, KanjiVGStrokes

WEIGHT = "400-normal"  # the regular weight: every font of FONTS has it
IMAGE_PX = 192  # side of a rendered character image, px: a realistic scan or screenshot size
EM_PX = 128  # the font size, px per em; CJK ink fills ~0.9 em, so the glyph stays inside the image
SCRIPTS = ("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA")  # characters scored (by Unicode name)
# Some packages are one typeface's ideographs under several names, the family's members differing
# in their kana only (measured 2026-12-06: yuji-syuku, yuji-boku and yuji-mai; kaisei-decol,
# kaisei-opti and kaisei-tokumin; mochiy-pop-one and mochiy-pop-p-one). Two such "twins" scored
# side by side count one font's glyphs twice, and a training font that twins a scoring font shows
# the model that font's ink. Twins render their shared ideographs pixel for pixel alike: TWIN_SAMPLE
# of them, spread over those both have, are compared; fewer than TWIN_MIN shared tell nothing.
TWIN_SAMPLE = 12
TWIN_MIN = 3


@dataclass(frozen=True)
class Font:
    """One font of the set: its @fontsource package (pinned), language (ground truth: ``ja``
    KanjiVG, ``zh`` hanzi-writer-data) and style. All are under the SIL Open Font License 1.1."""

    name: str
    version: str
    language: str
    style: str


FONTS = (
    Font("sawarabi-gothic", "5.3.1", "ja", "printed sans"),
    Font("shippori-mincho", "5.3.0", "ja", "printed serif"),
    Font("zcool-xiaowei", "5.3.0", "zh", "printed serif"),
    Font("zen-maru-gothic", "5.3.0", "ja", "rounded"),
    Font("ma-shan-zheng", "5.3.1", "zh", "kai/brush"),
    Font("klee-one", "5.3.0", "ja", "pen handwriting"),
    Font("yusei-magic", "5.3.0", "ja", "marker"),
    Font("zhi-mang-xing", "5.3.0", "zh", "semi-cursive"),
)
# Validation fonts: the same styles drawn by other fonts, for choosing settings (pens, thresholds)
# with ``evaluate --split val``, on validation-split characters. A setting is never chosen on FONTS.
VAL_FONTS = (
    Font("zen-kaku-gothic-new", "5.3.0", "ja", "printed sans"),
    Font("kaisei-decol", "5.3.0", "ja", "printed serif"),
    Font("m-plus-rounded-1c", "5.3.0", "ja", "rounded"),
    Font("yuji-syuku", "5.3.0", "ja", "brush"),
    Font("zen-kurenaido", "5.3.0", "ja", "pen handwriting"),
    Font("hachi-maru-pop", "5.3.0", "ja", "marker"),
    Font("mochiy-pop-one", "5.3.0", "ja", "heavy marker"),
    Font("long-cang", "5.3.0", "zh", "semi-cursive"),
)


def fetch_command(fonts: Tuple[Font, ...], folder: str) -> str:
    """The one command that gets ``fonts`` into ``folder`` (``.tgz`` files of ``npm pack``)."""
    packages = " ".join(f"@fontsource/{f.name}@{f.version}" for f in fonts)
    return f"mkdir -p {folder} && npm pack --pack-destination {folder} {packages}"


FETCH = fetch_command(FONTS, "fonts")
FETCH_VAL = fetch_command(VAL_FONTS, "valfonts")
_FILE = re.compile(r"(?:^|/)files/([\w-]+-" + WEIGHT + r")\.(woff2?)$")


class FontPackage:
    """The regular weight of one @fontsource package (a ``.tgz`` of ``npm pack`` or the folder it
    unpacks to), read into memory once (~2 MB), able to render the characters its files hold."""

    def __init__(self, font: Font, files: Dict[str, bytes], source: Path, license: bytes = b"") -> None:
        self.font, self.source = font, source
        self.license = license  # the package's LICENSE (the OFL text with the font's copyright)
        self.files = files  # subset file name (no extension) -> its WOFF (or WOFF2) bytes
        self._index: Optional[Dict[int, str]] = None
        self._ideographs: Optional[List[int]] = None
        self._loaded: Dict[str, ImageFont.FreeTypeFont] = {}

    def _codes(self) -> Dict[int, str]:
        """Each codepoint the package draws -> the subset file whose cmap holds it."""
        if self._index is None:  # ~1 ms a file: the first character pays for the package
            self._index = {}
            for name, data in sorted(self.files.items()):
                try:
                    cmap = TTFont(io.BytesIO(data), lazy=True).getBestCmap() or {}
                except (TTLibError, OSError, ValueError, KeyError, struct.error) as e:
                    raise DataError(f"{self.source}: {name} is not a readable font ({e})") from None
                for code in cmap:
                    self._index.setdefault(code, name)
        return self._index

    def file_of(self, char: str) -> Optional[str]:
        """The name of the subset file whose cmap holds ``char``; None if none does."""
        return self._codes().get(ord(char))

    def ideographs(self) -> List[int]:
        """The codepoints of the CJK ideographs the package draws, in order."""
        if self._ideographs is None:
            self._ideographs = sorted(c for c in self._codes() if unicodedata.name(chr(c), "").startswith(SCRIPTS[0]))
        return self._ideographs

    def _pil_font(self, name: str) -> ImageFont.FreeTypeFont:
        if name not in self._loaded:  # converted once per process: a subset file holds ~100 characters
            ttf = io.BytesIO()
            try:
                font = TTFont(io.BytesIO(self.files[name]))
                font.flavor = None
                font.save(ttf)
                ttf.seek(0)
                self._loaded[name] = ImageFont.truetype(ttf, EM_PX)
            except (TTLibError, OSError, ValueError, KeyError, struct.error) as e:
                raise DataError(f"{self.source}: {name} is not a readable font ({e})") from None
        return self._loaded[name]

    def render(self, char: str, size: int = IMAGE_PX) -> Optional[np.ndarray]:
        """The character as a (size, size) uint8 grey image, black ink centred on white paper; None
        when the font lacks it (no cmap entry, or a glyph without ink)."""
        name = self.file_of(char)
        if name is None:
            return None
        font = self._pil_font(name)
        image = Image.new("L", (size, size), 255)
        draw = ImageDraw.Draw(image)
        left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
        if right <= left or bottom <= top:
            return None
        draw.text(((size - left - right) / 2, (size - top - bottom) / 2), char, font=font, fill=0)
        grey = np.asarray(image)
        return grey if grey.min() < 128 else None


def twin_of(package: FontPackage, others: Sequence[FontPackage]) -> Optional[FontPackage]:
    """The first of ``others`` that draws the same ideographs as ``package`` (see TWIN_SAMPLE), or
    None. A pair that differs stops at its first differing glyph, so a check costs ~2 renders."""
    mine = set(package.ideographs())
    for other in others:
        shared = sorted(mine.intersection(other.ideographs()))
        if len(shared) >= TWIN_MIN and _same_glyphs(package, other, shared):
            return other
    return None


def without_twins(
    packages: Sequence[FontPackage], earlier: Sequence[FontPackage] = ()
) -> Tuple[List[FontPackage], List[Tuple[FontPackage, FontPackage]]]:
    """``packages`` less each one that twins one kept before it (or one of ``earlier``), and those
    passed over, each with the package it twins."""
    kept: List[FontPackage] = []
    twins = []
    for package in packages:
        twin = twin_of(package, [*earlier, *kept])
        if twin is None:
            kept.append(package)
        else:
            twins.append((package, twin))
    return kept, twins


def _same_glyphs(a: FontPackage, b: FontPackage, shared: List[int]) -> bool:
    """Whether TWIN_SAMPLE of the ``shared`` codepoints, evenly spread, render alike in both (ones
    neither inks are passed over; at least TWIN_MIN must have ink)."""
    inked = 0
    for i in np.linspace(0, len(shared) - 1, min(TWIN_SAMPLE, len(shared))).round().astype(int):
        x, y = a.render(chr(shared[i])), b.render(chr(shared[i]))
        if x is None and y is None:
            continue
        if x is None or y is None or not np.array_equal(x, y):
            return False
        inked += 1
    return inked >= TWIN_MIN


def _wanted(files: Dict[Tuple[str, str], bytes]) -> Dict[str, bytes]:
    """The WOFF files of the regular weight by name, or its WOFF2 files when there are no WOFF ones."""
    kind = "woff" if any(k == "woff" for _, k in files) else "woff2"
    return {name: data for (name, k), data in files.items() if k == kind}


def _read_tgz(path: Path) -> Tuple[dict, dict, Dict[str, bytes], bytes]:
    meta, metadata, files, license = {}, {}, {}, b""
    with tarfile.open(path) as tar:  # one pass: a gzip stream has no random access
        for member in tar:
            if not member.isfile():
                continue
            if member.name.endswith("package/package.json"):
                meta = json.loads(tar.extractfile(member).read())
            elif member.name.endswith("package/metadata.json"):
                metadata = json.loads(tar.extractfile(member).read())
            elif member.name.endswith("package/LICENSE"):
                license = tar.extractfile(member).read()
            elif match := _FILE.search(member.name):
                files[match.groups()] = tar.extractfile(member).read()
    return meta, metadata, _wanted(files), license


def _read_folder(path: Path) -> Tuple[dict, dict, Dict[str, bytes], bytes]:
    root = path / "package" if (path / "package" / "package.json").is_file() else path
    if not (root / "package.json").is_file():
        return {}, {}, {}, b""
    files = {}
    for file in sorted((root / "files").glob(f"*-{WEIGHT}.woff*")):
        if match := _FILE.search(file.relative_to(root).as_posix()):
            files[match.groups()] = file.read_bytes()
    license = (root / "LICENSE").read_bytes() if (root / "LICENSE").is_file() else b""
    metadata = json.loads((root / "metadata.json").read_text()) if (root / "metadata.json").is_file() else {}
    return json.loads((root / "package.json").read_text()), metadata, _wanted(files), license


def package_font(meta: dict, metadata: dict) -> Optional[Font]:
    """Any @fontsource package as a font of the set (``--any-fonts``): its language from the
    subsets its ``metadata.json`` lists (``japanese``: KanjiVG's truth, else ``chinese-*``:
    hanzi-writer-data's), its style the package's category; None without either subset."""
    subsets = metadata.get("subsets") or []
    language = "ja" if "japanese" in subsets else "zh" if any(s.startswith("chinese") for s in subsets) else None
    name = str(meta.get("name", "")).removeprefix("@fontsource/")
    if language is None or not name:
        return None
    return Font(name, str(meta.get("version", "")), language, str(metadata.get("category", "")))


def find_fonts(
    fonts_dir: str | Path,
    split: str = "test",
    any_fonts: bool = False,
    keep_twins: bool = False,
    flag: str = "--fonts-dir",
) -> Tuple[List[FontPackage], List[str]]:
    """The packages of the split's fonts (:data:`FONTS` for ``test``, :data:`VAL_FONTS` for
    ``val``) in a folder (``.tgz`` files of ``npm pack``, or folders they unpack to), in their
    list's order, and notes on what was passed over (other packages, missing fonts). With
    ``any_fonts``, every package of a Japanese or Chinese font there (:func:`package_font`): the
    split's fonts first, then the others by name, each passed over (noted) where it draws the
    ideographs of one before it (:func:`twin_of`), so one typeface is not scored twice
    (``keep_twins``: kept). Errors name the folder as ``flag`` (the option that gave it).

    Raises:
        DataError: the folder does not exist or holds none of the fonts; the message names the
            folder and the fetch command.
    """
    fonts, fetch = (FONTS, FETCH) if split == "test" else (VAL_FONTS, FETCH_VAL)
    folder = Path(fonts_dir).expanduser()
    if not folder.is_dir():
        get = "get one: `npm pack @fontsource/NAME`" if any_fonts else f"get the fonts: `{fetch}`"
        raise DataError(f"{flag} {fonts_dir}: no such folder ({get})")
    by_name = {f"@fontsource/{f.name}": f for f in (FONTS + VAL_FONTS if any_fonts else fonts)}
    found: Dict[str, FontPackage] = {}
    notes = []
    for entry in sorted(folder.iterdir()):
        try:
            meta, metadata, files, license = _read_tgz(entry) if entry.name.endswith(".tgz") else _read_folder(entry)
        except (tarfile.TarError, OSError, json.JSONDecodeError) as e:
            raise DataError(f"{flag} {fonts_dir}: {entry.name} is not a readable package ({e})") from None
        if not meta:
            continue
        font = by_name.get(meta.get("name")) or (package_font(meta, metadata) if any_fonts else None)
        if font is None or not files:
            why = "no japanese or chinese subset in its metadata.json" if any_fonts else "not one of the set's fonts"
            notes.append(f"{entry.name}: {why}, or no {WEIGHT} files; passed over")
        elif font.name not in found:
            found[font.name] = FontPackage(font, files, entry, license)
    if not found:
        if any_fonts:
            raise DataError(
                f"{flag} {fonts_dir}: no package of a Japanese or Chinese font there"
                " (get one: `npm pack @fontsource/NAME`)"
            )
        raise DataError(f"{flag} {fonts_dir}: none of the set's fonts there (get them: `{fetch}`)")
    listed = [f.name for f in fonts]
    missing = [name for name in listed if name not in found]
    if missing and not any_fonts:
        notes.append(f"not in {fonts_dir}: {', '.join(missing)} (get them: `{fetch}`)")
    others = sorted(name for name in found if name not in listed)
    packages = [found[name] for name in listed if name in found] + [found[name] for name in others]
    if not any_fonts or keep_twins:  # the set's fonts are distinct typefaces (tests/test_fonts.py)
        return packages, notes
    kept, twins = without_twins(packages)
    twice = "passed over, so one typeface does not count twice"
    notes += [f"{p.source.name}: draws the same ideographs as {t.font.name}; {twice}" for p, t in twins]
    return kept, notes


def scored(char: str) -> bool:
    """Whether a character is one the set scores: an ideograph or kana (see the module's note)."""
    return unicodedata.name(char, "").startswith(SCRIPTS)


def split_strokes(
    language: str,
    val_fraction: float,
    test_fraction: float,
    cache_dir: Optional[str] = None,
    hanzi_dir: Optional[str] = None,
    split: str = "test",
) -> List[Tuple[str, List[np.ndarray]]]:
    """(character, its strokes in unit coordinates) of a split, in the split's fixed order:
    KanjiVG's base glyphs (no variants) for ``ja``, hanzi-writer-data's medians for ``zh``."""
    if language == "ja":
        source = KanjiVGStrokes(split, val_fraction, test_fraction, cache_dir)
        names = [(i, source.name(i)) for i in range(len(source))]
        pairs = [(chr(int(n, 16)), source.glyph(i)) for i, n in names if "-" not in n]
    else:
        source = HanziStrokes(split, val_fraction, test_fraction, source=hanzi_dir, cache_dir=cache_dir)
        pairs = [(chr(int(source.name(i), 16)), source.glyph(i).medians) for i in range(len(source))]
    return [(c, list(strokes)) for c, strokes in pairs if scored(c)]

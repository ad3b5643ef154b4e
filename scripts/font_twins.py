"""Which font packages draw the same ideographs under different names, within and across folders.

A family's members often share their ideographs and differ in their kana only (yuji-syuku,
yuji-boku and yuji-mai; kaisei-decol, kaisei-opti and kaisei-tokumin): scored side by side they
count one typeface twice, and a training font that twins a validation or test font shows the
model that font's ink. Run it on every folder of fonts before choosing candidate or training
fonts: ``python scripts/font_twins.py fonts valfonts candidates trainfonts`` (every Japanese or
Chinese @fontsource package there; 12 s for those four folders here). Prints each twin with the package it
copies (the first one met, in the order of the folders given) and exits 1 if there is any.
Needs the ``eval`` extra (fontTools).
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from inktrace_train.data.fonts import FontPackage, find_fonts, without_twins
from inktrace_train.errors import reported


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", metavar="DIR", help="folders of @fontsource packages")
    args = p.parse_args(argv)
    seen: List[FontPackage] = []
    twins = 0
    with reported("font_twins.py"):
        for folder in args.folders:
            packages = find_fonts(folder, "val", any_fonts=True, keep_twins=True, flag="folder")[0]
            kept, found = without_twins(packages, seen)
            seen += kept
            twins += len(found)
            for package, twin in found:
                same = "is the package" if twin.font.name == package.font.name else "draws the same ideographs as"
                print(f"{package.source}: {same} {twin.font.name} ({twin.source})")
    print(f"{twins} twin(s) among {len(seen) + twins} packages")
    return 1 if twins else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Keys that the chosen options never read: set on the command line, they would change nothing.

``data.hanzi_dir=/some/path`` with the default ``data=kanjivg`` trains on KanjiVG alone; the user
believes otherwise. Each rule names a key, when it is read, and what would read it; the entry
point warns in one line for every key the command line sets that its options do not read.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, NamedTuple

from inktrace_train.config.schema import Config, override_key


class ReadWhen(NamedTuple):
    key: str
    read: Callable[[Config], bool]  # whether the composed config reads the key
    current: Callable[[Config], str]  # the option that decides, as it is now
    reader: str  # what would read it


DATA_FILES = ReadWhen("", lambda c: c.data.source != "synthetic", lambda c: f"data.source={c.data.source}", "")
RULES = [
    ReadWhen(
        "data.hanzi_dir", lambda c: c.data.source in ("hanzi", "mixed"), DATA_FILES.current, "data=hanzi or data=mixed"
    ),
    ReadWhen("data.max_strokes", lambda c: c.data.source == "synthetic", DATA_FILES.current, "data=synthetic"),
    ReadWhen("data.cache_dir", DATA_FILES.read, DATA_FILES.current, "every source but synthetic"),
    ReadWhen("data.val_fraction", DATA_FILES.read, DATA_FILES.current, "every source but synthetic"),
    ReadWhen("data.test_fraction", DATA_FILES.read, DATA_FILES.current, "every source but synthetic"),
    ReadWhen("stage.pipeline", lambda c: c.stage.name == "all", lambda c: f"stage={c.stage.name}", "stage=all"),
    ReadWhen("stage.overrides", lambda c: c.stage.name == "all", lambda c: f"stage={c.stage.name}", "stage=all"),
    *(
        ReadWhen(
            f"training.loss_weights.{head}",
            lambda c: c.model.full_heads or c.stage.name == "all",
            lambda c: f"stage={c.stage.name} (model.full_heads={c.model.full_heads})",
            "the dense stage (model.full_heads=true)",
        )
        for head in ("keypoints", "width", "offset")
    ),
]


def unused_keys(cfg: Config, named: Iterable[str]) -> List[str]:
    """One warning line per key in ``named`` (the command line's override keys) that ``cfg``'s
    options never read."""
    keys = {override_key(k) for k in named}
    return [
        f"{rule.key} is set but never read with {rule.current(cfg)}: only {rule.reader} reads it"
        for rule in RULES
        if any(k == rule.key or k.startswith(rule.key + ".") for k in keys) and not rule.read(cfg)  # or a key in it
    ]

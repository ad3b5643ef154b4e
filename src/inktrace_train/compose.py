"""Glue between Hydra and the typed :class:`~inktrace_train.config.Config`.

Registers the schema, checks command-line overrides before Hydra sees them (so a
misspelt key gets the nearest valid key), and turns a composed DictConfig into a
validated ``Config``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, List, NoReturn

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inktrace_train.config import (Config, ConfigError, is_known, schema_keys, to_config,
                                   unknown_key_message)

GROUPS = ("model", "stage", "training", "data", "experiment", "sweep")
RUN_ID_ENV = "INKTRACE_RUN_ID"  # set it to make every rank (or a retried job) use one run id


def config_dir() -> str:
    """The ``conf/`` folder: inside the installed wheel, else at the source tree's top."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[2] / "conf")


def run_id() -> str:
    """A short id that makes run directories unique even when started in the same second."""
    return os.environ.get(RUN_ID_ENV) or secrets.token_hex(3)


def new_run_dir(kind: str = "") -> str:
    """``outputs/<date>/<time>_<id>`` (``outputs/<kind>/...`` for sweeps): the one place this pattern lives."""
    now = datetime.now()
    parts = ["outputs", kind, now.strftime("%Y-%m-%d"), f"{now.strftime('%H-%M-%S')}_{run_id()}"]
    return str(Path(*[p for p in parts if p]))


def register() -> None:
    """Register the schema and the run-directory resolvers (idempotent)."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    if not OmegaConf.has_resolver("inktrace_run_dir"):
        # Cached, so every use in one process gives the same directory.
        OmegaConf.register_new_resolver("inktrace_run_dir", new_run_dir, use_cache=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line and exit; never a traceback for a user error."""
    print(f"inktrace_train: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def command_line(argv: List[str]) -> argparse.Namespace:
    """Hydra's own reading of the command line, plus ``resume`` (the ``+resume=`` path or
    None) split off from the other overrides."""
    from hydra._internal.utils import get_args_parser

    from inktrace_train.resume import split_resume

    args, _ = get_args_parser().parse_known_args(argv)
    args.resume, args.overrides = split_resume(args.overrides)
    return args


def check_overrides(argv: List[str]) -> None:
    """Reject misspelt or mistyped keys on the command line before Hydra composes.

    Hydra accepts ``+key=`` and ``++key=`` for keys the schema lacks and names no
    alternative for a misspelt key; this check names the nearest valid key.
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args, _ = get_args_parser().parse_known_args(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException:
        return  # Hydra reports its own grammar errors, naming the override
    known = schema_keys()
    schema = OmegaConf.structured(Config)
    for o in overrides:
        key = o.key_or_group
        if key.split(".")[0].split("/")[0] == "hydra" or (key in GROUPS and not o.is_delete()):
            continue
        if not is_known(key, known):
            raise ConfigError(unknown_key_message(key))
        if o.is_sweep_override() or o.is_delete():
            continue
        try:
            OmegaConf.update(schema, key, o.value(), merge=True)
        except OmegaConfBaseException as e:
            msg = str(e).splitlines()[0]
            raise ConfigError(f"{o.input_line}: wrong type for '{key}': {msg}") from None


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def stage_overrides(task: List[str], stage: str, first: bool, extra: List[str]) -> List[str]:
    """The command line for one stage of ``stage=all``: the user's overrides (which apply to
    every stage; ``stage.init_from`` only to the first), ``stage=<name>``, then that stage's
    own ``stage.overrides.<name>``."""
    keep = [o for o in task if _key(o) != "stage" and not _key(o).startswith("stage.overrides")
            and (first or _key(o) != "stage.init_from")]
    return keep + [f"stage={stage}"] + list(extra)


def compose_stages(cfg: Config, task: List[str]) -> List[Config]:
    """The config of every stage a run trains: ``[cfg]``, or with ``stage=all`` each stage of
    ``stage.pipeline`` re-composed from its own stage file (so the command line still wins).
    Must run inside the Hydra app (it reuses the app's config search path)."""
    if cfg.stage.name != "all":
        return [cfg]
    from hydra import compose

    return [to_config(compose("config", overrides=stage_overrides(task, name, i == 0, cfg.stage.overrides[name])))
            for i, name in enumerate(cfg.stage.pipeline)]


class ValidateConfig(Callback):
    """Validates before Hydra makes any directory (``on_run_start`` precedes the run dir)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            to_config(config)
        except ConfigError as e:
            fail(str(e))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.on_run_start(config)

"""Glue between Hydra and the typed :class:`~inktrace_train.config.Config`.

Registers the schema and the run-directory resolver, checks command-line overrides
before Hydra sees them (so a misspelt key gets the nearest valid key), composes each
stage of ``stage=all``, and validates in a Hydra callback before any directory is
made. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from inktrace_train.config import Config, is_known, schema_keys, to_config, unknown_key_message
from inktrace_train.errors import ConfigError, UserError, fail
from inktrace_train.ranks import Ranks
from inktrace_train.runs import RunDir

GROUPS = ("model", "stage", "training", "data", "experiment", "sweep")


def config_dir() -> str:
    """The ``conf/`` folder: inside the installed wheel, else at the source tree's top."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[2] / "conf")


def _new_run_dir(kind: str = "") -> str:
    return str(RunDir.new_path(kind))


def register() -> None:
    """Register the schema and the run-directory resolver (idempotent)."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    if not OmegaConf.has_resolver("inktrace_run_dir"):
        # Cached, so every use in one process gives the same directory.
        OmegaConf.register_new_resolver("inktrace_run_dir", _new_run_dir, use_cache=True)


def group_options(group: str, extra_dirs: List[str]) -> List[str]:
    """The options of a config group: its yaml files here and in the user's ``--config-dir``."""
    dirs = [Path(config_dir()), *(Path(d).expanduser() for d in extra_dirs)]
    return sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml")})


def _check_group_choice(group: str, choices: List[Any], extra_dirs: List[str]) -> None:
    options = group_options(group, extra_dirs)
    for choice in choices:
        if choice is None:
            raise ConfigError(
                f"{group}=null is not an option: leave {group} out to use none; options: {', '.join(options)}"
            )
        if str(choice) not in options:
            near = difflib.get_close_matches(str(choice), options, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise ConfigError(f"unknown option {group}={choice}: {hint}options: {', '.join(options)}")


def check_overrides(overrides: List[str], extra_dirs: Optional[List[str]] = None) -> None:
    """Reject misspelt or mistyped keys and group options on the command line before Hydra composes.

    Hydra accepts ``+key=`` and ``++key=`` for keys the schema lacks, names no alternative for
    a misspelt key, and answers a misspelt group option with a multi-line message; this check
    names the nearest valid key or option in one line.

    Args:
        extra_dirs: the user's ``--config-dir``, whose group files count as options too.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra reports its own grammar errors, naming the override
    known = schema_keys()
    schema = OmegaConf.structured(Config)
    for o in parsed:
        key = o.key_or_group
        if key.split(".")[0].split("/")[0] == "hydra":
            continue
        if key in GROUPS and not o.is_delete():
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
            _check_group_choice(key, values, extra_dirs or [])
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


def compose_plain(overrides: List[str]) -> Dict[str, Any]:
    """The full config for a command line, as plain containers (resume compares against it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a sweep job: reuse the app's search path
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def stage_overrides(task: List[str], stage: str, first: bool, extra: List[str]) -> List[str]:
    """The command line for one stage of ``stage=all``: the user's overrides (which apply to
    every stage; ``stage.init_from`` only to the first), ``stage=<name>``, then that stage's
    own ``stage.overrides.<name>``."""
    keep = [
        o
        for o in task
        if _key(o) != "stage" and not _key(o).startswith("stage.overrides") and (first or _key(o) != "stage.init_from")
    ]
    return keep + [f"stage={stage}"] + list(extra)


def compose_stages(cfg: Config, task: List[str]) -> List[Config]:
    """The config of every stage a run trains: ``[cfg]``, or with ``stage=all`` each stage of
    ``stage.pipeline`` re-composed from its own stage file (so the command line still wins).
    Must run inside the Hydra app (it reuses the app's config search path)."""
    if cfg.stage.name != "all":
        return [cfg]
    from hydra import compose

    return [
        to_config(compose("config", overrides=stage_overrides(task, name, i == 0, cfg.stage.overrides[name])))
        for i, name in enumerate(cfg.stage.pipeline)
    ]


def check_world_size(cfg: Config) -> None:
    """Under torchrun or Slurm: the global batch and the validation set must split over the ranks."""
    world = Ranks.from_env().world_size
    if cfg.training.batch_size % world or cfg.data.val_samples < world:
        raise ConfigError(
            f"training.batch_size={cfg.training.batch_size} (the global batch) must divide evenly over the "
            f"{world} processes of this job, and data.val_samples={cfg.data.val_samples} must be at least {world}"
        )


class ValidateConfig(Callback):
    """Validates before Hydra makes any directory (``on_run_start`` precedes the run dir), and
    refuses a directory that holds another run before Hydra writes its ``.hydra/`` record there.

    Args:
        sweep_resume: set by the entry point when ``+resume=`` re-runs a sweep into its own directory.
    """

    def __init__(self, sweep_resume: bool = False) -> None:
        self.sweep_resume = sweep_resume

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            cfg = to_config(config)
            check_world_size(cfg)
            run = RunDir(Path(config.hydra.run.dir))
            if cfg.training.auto_resume and run.config_file.is_file():
                # The entry point resumes this run: Hydra's record of this launch goes beside the
                # original one, which is never rewritten.
                with open_dict(config):
                    config.hydra.output_subdir = f"{run.hydra_dir.name}/resume-{datetime.now():%Y-%m-%d_%H-%M-%S}"
            else:
                run.refuse_if_taken()
        except UserError as e:
            fail(str(e))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            to_config(config)
            sweep = Path(config.hydra.sweep.dir)
            auto_resume = OmegaConf.select(config, "training.auto_resume", default=False)
            if not (self.sweep_resume or auto_resume) and (sweep / "multirun.yaml").is_file():
                raise UserError(
                    f"{sweep} already holds a sweep: re-run its command with +resume={sweep} "
                    "to finish it, or choose another hydra.sweep.dir"
                )
        except UserError as e:
            fail(str(e))

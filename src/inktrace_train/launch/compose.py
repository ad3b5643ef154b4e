"""Glue between Hydra and the typed :class:`~inktrace_train.config.schema.Config`.

Registers the schema and the run-directory resolver, checks command-line overrides
before Hydra sees them (so a misspelt key gets the nearest valid key), composes each
stage of ``stage=all``, and validates in a Hydra callback before any directory is
made. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import os
import re
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from inktrace_train.config.schema import (
    PIPELINE,
    Config,
    backbone_diffs,
    is_known,
    override_key,
    schema_keys,
    to_config,
    unknown_key_message,
)
from inktrace_train.errors import ConfigError, UserError, fail, first_line
from inktrace_train.run.ranks import Ranks
from inktrace_train.run.rundir import RunDir

GROUPS = ("model", "stage", "training", "data", "experiment", "sweep")
# A new run's directory -> its entries before this process's start (None: it did not exist).
BEFORE_START: Dict[Path, Optional[Set[str]]] = {}


def config_dir() -> str:
    """The ``conf/`` folder: inside the installed wheel, else at the source tree's top."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[3] / "conf")


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


def check_overrides(overrides: List[str], extra_dirs: Optional[List[str]] = None, multirun: bool = False) -> None:
    """Reject misspelt or mistyped keys and group options on the command line before Hydra composes.

    Hydra accepts ``+key=`` and ``++key=`` for keys the schema lacks, names no alternative for
    a misspelt key, and answers a misspelt group option with a multi-line message; this check
    names the nearest valid key or option in one line.

    Args:
        extra_dirs: the user's ``--config-dir``, whose group files count as options too.
        multirun: ``-m`` was given, so comma lists and ranges are sweeps.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except (HydraException, ValueError):  # ValueError: e.g. an integer of more than 4,300 digits
        raise ConfigError(_grammar_error(overrides)) from None
    known = schema_keys()
    schema = OmegaConf.structured(Config)
    for o in parsed:
        key = o.key_or_group
        if key.split(".")[0].split("/")[0] == "hydra":
            continue
        if o.is_sweep_override() and not multirun:
            raise ConfigError(
                f"'{o.input_line}' gives several values: add -m (--multirun) to sweep over them, "
                f"or write one value (a list is {key}=[a,b])"
            )
        if key in GROUPS and not o.is_delete():
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
            _check_group_choice(key, values, extra_dirs or [])
            continue
        if key.startswith("stage.overrides.") and key.split(".")[2] not in PIPELINE:
            near = difflib.get_close_matches(key.split(".")[2], PIPELINE, n=1)
            hint = f"did you mean 'stage.overrides.{near[0]}'? " if near else ""
            raise ConfigError(f"unknown stage in '{key}': {hint}stages: {', '.join(PIPELINE)}")
        if key.startswith("data.source_args.") and not (o.is_add() or o.is_force_add() or o.is_delete()):
            # Hydra would refuse it in several lines: the dict's keys are the user's own, added with +.
            raise ConfigError(f"'{o.input_line}': data.source_args takes keys of your own: write +{o.input_line}")
        if not is_known(key, known):
            raise ConfigError(unknown_key_message(key))
        if o.is_sweep_override() or o.is_delete():
            continue
        try:
            OmegaConf.update(schema, key, o.value(), merge=True)
        except (OmegaConfBaseException, ValueError) as e:
            msg = str(e).splitlines()[0]
            raise ConfigError(f"{o.input_line}: wrong type for '{key}': {msg}") from None


def single_valued(overrides: List[str]) -> List[str]:
    """The overrides that set one config key to one value: no sweep (comma list, range), no
    deletion, no group choice (``model=tiny``, which may name a file of ``--config-dir``), nothing of
    Hydra's own (``hydra.*``). Call after :func:`check_overrides`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        o.input_line
        for o in parsed
        if not (
            o.is_sweep_override()
            or o.is_delete()
            or o.key_or_group in GROUPS
            or o.key_or_group.split(".")[0].split("/")[0] == "hydra"
        )
    ]


def _grammar_error(overrides: List[str]) -> str:
    """Hydra's override-grammar error in one line: which override, what the parser met, and how to
    quote (Hydra's own report is four lines and exit status 1)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    for override in overrides:
        try:
            OverridesParser.create().parse_overrides([override])
        except (HydraException, ValueError) as e:
            lines = [x.strip() for x in str(e).splitlines() if x.strip() and not x.startswith(("See https", "Error"))]
            reason = re.sub(r"\s*expecting \{.*\}", "", lines[0]) if lines and "^" not in lines else ""
            reason = reason if reason and "LexerNoViableAlt" not in reason else "an unclosed quote or bracket"
            key, _, value = override.partition("=")
            if value.startswith("~"):  # the shell expands ~ only at a word's start, not after key=
                return (
                    f"cannot parse override '{override}': the shell does not expand ~ after '='; "
                    f"write {key}=$HOME{value[1:]}"
                )
            return (
                f"cannot parse override '{override}': {reason}; write KEY=VALUE, quoting values with special "
                f"characters (e.g. 'key=\"a(b)\"', and list items as 'key=[\"x=1\"]')"
            )
    return "cannot parse the overrides: write KEY=VALUE"


def compose_plain(overrides: List[str], extra_dirs: Sequence[str] = ()) -> Dict[str, Any]:
    """The full config for a command line, as plain containers (resume compares against it).

    Args:
        extra_dirs: the user's ``--config-dir``, searched after the package's ``conf/`` (Hydra's
            public compose API can only append to the search path; ``--config-dir`` goes before,
            which differs only for a file of the same group and name as one of the package's).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a sweep job: reuse the app's search path
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    if extra_dirs:
        quoted = ",".join(_quoted(f"file://{Path(d).expanduser().resolve()}") for d in extra_dirs)
        overrides = [*overrides, f"hydra.searchpath=[{quoted}]"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def _quoted(text: str) -> str:
    """``text`` as a quoted string of Hydra's override grammar."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stage_overrides(task: List[str], stage: str, first: bool, extra: List[str]) -> List[str]:
    """The command line for one stage of ``stage=all``: the user's overrides (which apply to
    every stage; ``stage.init_from`` only to the first), ``stage=<name>``, then that stage's
    own ``stage.overrides.<name>``."""
    keep = [
        o
        for o in task
        if override_key(o) != "stage"
        and not override_key(o).startswith("stage.overrides")
        and (first or override_key(o) != "stage.init_from")
    ]
    return keep + [f"stage={stage}"] + list(extra)


def compose_stages(cfg: Config, task: List[str]) -> List[Config]:
    """The config of every stage a run trains: ``[cfg]``, or with ``stage=all`` each stage of
    ``stage.pipeline`` re-composed from its own stage file (so the command line still wins).
    Every stage is validated here, before any training: its own overrides, its values, and that
    a stage starting from the previous stage's best weights has the same backbone. Must run
    inside the Hydra app (it reuses the app's config search path)."""
    if cfg.stage.name != "all":
        return [cfg]
    stages = [
        _compose_stage(task, name, i == 0, cfg.stage.overrides[name]) for i, name in enumerate(cfg.stage.pipeline)
    ]
    for previous, stage in itertools.pairwise(stages):
        diffs = (
            [] if stage.stage.init_from else backbone_diffs(asdict(previous), asdict(stage.model), stage.data.img_size)
        )
        if diffs:
            raise ConfigError(
                f"stage=all: {stage.stage.name} starts from the best weights of {previous.stage.name}, but their "
                f"backbones differ ({previous.stage.name} vs {stage.stage.name}): {'; '.join(diffs)}"
            )
    return stages


def _compose_stage(task: List[str], name: str, first: bool, extra: List[str]) -> Config:
    from hydra import compose
    from hydra.errors import HydraException

    where = f"stage.overrides.{name}"
    for o in extra:
        if override_key(o) == "stage" or override_key(o).startswith(
            ("stage.name", "stage.pipeline", "stage.overrides")
        ):
            raise ConfigError(
                f"{where}: '{o}' would change the pipeline itself; a stage's overrides set its own keys "
                "(stage.pipeline and stage.overrides belong to stage=all)"
            )
    try:
        check_overrides(extra)
        return to_config(compose("config", overrides=stage_overrides(task, name, first, extra)))
    except UserError as e:
        raise ConfigError(f"{where} (stage {name} of stage=all): {e}") from None
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"{where} (stage {name} of stage=all): {first_line(e)}") from None


def check_world_size(cfg: Config) -> None:
    """Under torchrun or Slurm: the global batch and the validation set must split over the ranks."""
    world = Ranks.from_env().world_size
    if cfg.training.batch_size % world or cfg.data.val_samples < world:
        raise ConfigError(
            f"training.batch_size={cfg.training.batch_size} (the global batch) must divide evenly over the "
            f"{world} processes of this job, and data.val_samples={cfg.data.val_samples} must be at least {world}"
        )


_CREATE_ATTEMPTS = 100


def check_creatable(path: Path, key: str) -> None:
    """Raise unless ``path`` is a directory or can be made (Hydra would try with a traceback).
    The check makes the missing directories and removes them again, those it made only, and only
    while empty: runs started at once in a fresh folder share the new ``outputs/<date>`` (one may
    have made a folder in it, or removed it, between two steps of another's check)."""
    path = path.expanduser().absolute()
    made: List[Path] = []
    try:
        # A parent removed by another run's check under our feet: walk again. A walk loses only to
        # a removal, and a check removes the folders it made once, as it ends: with N checks at
        # once under outputs/<date>/ a walk loses fewer than 3N times in all. Five walks were too
        # few for eight checks on a busy machine (CI, once in 320 checks); 100 cover 30 at once.
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                for directory in reversed([p for p in (path, *path.parents) if not p.exists()]):
                    with contextlib.suppress(FileExistsError):  # made by another run meanwhile
                        directory.mkdir()
                        made.append(directory)
                break
            except FileNotFoundError:
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
        if not path.is_dir():
            raise ConfigError(f"{key}={path}: a file is in the way")
    except OSError as e:
        raise ConfigError(f"{key}={str(path)[:200]}: cannot create it ({e.strerror or e})") from None
    finally:
        for directory in reversed(made):
            with contextlib.suppress(OSError):  # not empty (another run's folder is in it) or gone
                directory.rmdir()


class ValidateConfig(Callback):
    """Validates before Hydra makes any directory (``on_run_start`` precedes the run dir), and
    refuses a directory that holds another run before Hydra writes its ``.hydra/`` record there.

    Args:
        sweep_resume: set by the entry point when ``+resume=`` re-runs a sweep into its own directory.
        resume_keys: the keys such a resume changes in each job (``+resume=SWEEP training.epochs=N``);
            the jobs read them from Hydra's config, not from here.
    """

    def __init__(self, sweep_resume: bool = False, resume_keys: Optional[List[str]] = None) -> None:
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
                check_creatable(run.path, "hydra.run.dir")
                run.refuse_if_taken()
                # What was there before this start (hydra.run.dir=. is a folder of the user's own):
                # a failed start removes only what it wrote.
                BEFORE_START[run.path.resolve()] = set(os.listdir(run.path)) if run.path.is_dir() else None
        except UserError as e:
            fail(str(e))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            to_config(config)
            sweep = Path(config.hydra.sweep.dir)
            check_creatable(sweep, "hydra.sweep.dir")
            auto_resume = OmegaConf.select(config, "training.auto_resume", default=False)
            if not (self.sweep_resume or auto_resume) and (sweep / "multirun.yaml").is_file():
                raise UserError(
                    f"{sweep} already holds a sweep: re-run its command with +resume={sweep} "
                    "to finish it, or choose another hydra.sweep.dir"
                )
        except UserError as e:
            fail(str(e))
        # The sweep's record, which +resume= reads back. Hydra's basic sweeper writes it as it
        # starts (the same file, again); the Optuna sweeper never does, so without this a stopped
        # Optuna sweep could not be resumed by the command its stop message gives.
        sweep.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep / "multirun.yaml")

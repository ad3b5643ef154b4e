"""Tier 1: every config composes and validates; every bad input gets one clear line."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from helpers import REPO, TINY, cli, needs_optuna, run_cli
from inktrace_train.config.schema import Config, ConfigError, nearest_key, schema_keys, to_config
from inktrace_train.launch.compose import config_dir, register

register()
GROUPS = ["model", "stage", "training", "data", "experiment", "sweep"]


def compose_config(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=overrides)


def group_options():
    conf = Path(config_dir())
    return [(g, p.stem) for g in GROUPS for p in sorted((conf / g).glob("*.yaml"))]


def group_params():
    """Every option; sweep=optuna needs the sweep extra (Hydra's Optuna sweeper)."""
    return [
        pytest.param(g, o, marks=needs_optuna) if (g, o) == ("sweep", "optuna") else (g, o) for g, o in group_options()
    ]


# Options that need a value no default can give (the brush data lives wherever the user put it).
REQUIRED = {
    ("data", "hanzi"): ["data.hanzi_dir=hanzi.tgz"],
    ("data", "mixed"): ["data.hanzi_dir=hanzi.tgz"],
    ("data", "strokes"): ["data.path=my_ink"],
    ("data", "custom"): ["data.source_target=my_module.MySource"],
}


@pytest.mark.parametrize("group,option", group_params())
def test_every_yaml_composes_and_validates(group, option):
    cfg = to_config(compose_config([f"{group}={option}", *REQUIRED.get((group, option), [])]))
    assert isinstance(cfg, Config)


def test_defaults_match_the_contract():
    cfg = to_config(compose_config([]))
    assert (cfg.model.embed_dim, cfg.model.num_layers, cfg.model.num_heads) == (128, 4, 4)
    assert (cfg.training.lr, cfg.training.batch_size, cfg.training.save_interval) == (1e-3, 32, 5)
    assert (cfg.training.keep_last_n, cfg.training.weight_decay, cfg.data.img_size) == (3, 1e-4, 64)
    assert cfg.stage.name == "structural" and cfg.stage.init_from is None and cfg.resume is None
    # conf/stage/structural.yaml
    assert (cfg.training.epochs, cfg.model.full_heads, cfg.training.mask_ratio) == (30, False, 0.6)
    dense = to_config(compose_config(["stage=dense"]))
    assert (dense.training.epochs, dense.model.full_heads, dense.training.lr) == (50, True, 5e-4)
    assert dense.training.mask_ratio == 0.0 and dense.stage.init_from is None


def test_command_line_beats_the_stage_file():
    cfg = to_config(compose_config(["stage=dense", "training.lr=1e-2", "training.epochs=3"]))
    assert (cfg.training.lr, cfg.training.epochs) == (1e-2, 3)


def test_defaults_are_written_once():
    """Group yaml files only override: none of them may restate a schema default."""
    import yaml

    defaults = Config()
    for group, option in group_options():
        if group in ("stage", "experiment", "sweep"):
            continue  # global-package files: a stage states its switches explicitly, by design
        text = yaml.safe_load((Path(config_dir()) / group / f"{option}.yaml").read_text()) or {}
        text.pop("defaults", None)
        node = getattr(defaults, group)
        for key, value in text.items():
            assert getattr(node, key) != value, f"{group}/{option}.yaml restates the default of {key}"


def test_overrides_on_both_sides_of_an_option(workdir):
    proc = cli(["training.lr=3e-4", "--cfg", "job", "model=tiny"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.0003" in proc.stdout and "embed_dim: 32" in proc.stdout


def test_nearest_key():
    assert nearest_key("training.lrr") == "training.lr"
    assert nearest_key("modle.embed_dim") == "model.embed_dim"


@pytest.mark.parametrize(
    "args,expected",
    [
        (["training.lrr=1"], "did you mean 'training.lr'"),
        (["+training.lrr=1"], "did you mean 'training.lr'"),
        (["++model.embed_dims=3"], "did you mean 'model.embed_dim'"),
        (["+training.foo=1"], "unknown config key 'training.foo': training has no key 'foo'; its keys: lr,"),
        (["+data.path.sub=1"], "unknown config key 'data.path.sub': data.path is a value, not a section"),
        (["training.lr=abc"], "training.lr"),
        (["training.lr=0"], "training.lr=0.0 is out of range: must be > 0"),
        (["training.mask_ratio=1.0"], "training.mask_ratio=1.0 is out of range: must be in [0, 1)"),
        (["training.keep_last_n=0"], "training.keep_last_n=0 is out of range: must be >= 1"),
        (["training.ema_decay=1"], "training.ema_decay=1.0 is out of range: must be in [0, 1) (0 turns it off)"),
        (["data.img_size=60"], "data.img_size=60 is out of range: a positive multiple of 8"),
        (["training.batch_size=0"], "training.batch_size=0 is out of range: must be >= 1"),
        (["model.num_heads=3"], "model.num_heads=3 is out of range: must be >= 1 and divide model.embed_dim=128"),
        (["stage=dense", "model.full_heads=false"], "model.full_heads=False is not allowed with stage.name=dense"),
        (["model=tinyy"], "unknown option model=tinyy: did you mean 'tiny'? options: default, tiny"),
        (["stage=dens"], "unknown option stage=dens: did you mean 'dense'? options: all, dense, structural"),
        (["-m", "model=default,tinyy"], "unknown option model=tinyy"),
        (["experiment=null"], "experiment=null is not an option: leave experiment out to use none"),
        (["data.path=~/ink"], "'data.path=~/ink': the shell does not expand ~ after '='; write data.path=$HOME/ink"),
        (["training.lr=(1"], "cannot parse override 'training.lr=(1'"),
    ],
)
def test_validation_errors(workdir, args, expected):
    proc = cli(args, cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert list(workdir.iterdir()) == [], "a rejected run left files behind"


def test_validation_does_not_import_torch():
    code = (
        "import sys; from inktrace_train.launch.compose import register, config_dir; register()\n"
        "from inktrace_train.config.schema import to_config\n"
        "from hydra import compose, initialize_config_dir\n"
        "with initialize_config_dir(config_dir=config_dir(), version_base='1.3'):\n"
        "    cfg = compose('config', overrides=['training.lr=-1'])\n"
        "try:\n    to_config(cfg)\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ConfigError", "False"]


def test_plus_added_key_caught_after_composition():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["+training.lr_typo=1"])
    with pytest.raises(ConfigError, match=r"training.lr_typo"):
        to_config(cfg)


def test_help_lists_groups_and_options(workdir):
    out = run_cli(["--help"], cwd=workdir, timeout=60).stdout
    for text in (
        "model: default, tiny",
        "stage: all, dense, structural",
        "data: custom, hanzi, kanjivg, mixed, strokes, synthetic",
        "lr: 0.001",
        "+resume=",
    ):
        assert text in out
    named = re.findall(r"src/inktrace_train/[\w/]+\.py", out)  # the files it sends the reader to exist
    assert named and all((REPO / path).is_file() for path in named), named


def _chain(node: ast.AST) -> str | None:
    """``cfg.training.lr`` for an attribute chain on a name; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _attribute_paths(source_files) -> set:
    """Every attribute chain read in the sources, with local aliases expanded: after
    ``t = cfg.training``, ``t.lr`` counts as ``cfg.training.lr``."""
    paths = set()
    for path in source_files:
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for target, value in zip(targets, values, strict=False):
                    if isinstance(target, ast.Name) and _chain(value):
                        aliases[target.id] = _chain(value)
        for node in ast.walk(tree):
            chain = _chain(node) if isinstance(node, ast.Attribute) else None
            if chain:
                head, _, rest = chain.partition(".")
                paths.add(f"{aliases[head]}.{rest}" if head in aliases else chain)
    return paths


def test_every_schema_key_is_read_by_code():
    """A key no code reads is a silent no-op for users: walk the schema and find, for each key,
    a read of its full path (``cfg.training.seed``, ``t.seed`` after ``t = cfg.training``, or
    ``data.source`` on a DataConfig argument named ``data``), not just of its leaf name."""
    from inktrace_train.model.losses import StructureLoss
    from inktrace_train.model.network import InkTraceModel

    src = [p for p in (REPO / "src" / "inktrace_train").rglob("*.py") if p.name != "config.py"]
    reads = _attribute_paths(src)
    splatted = {"model": InkTraceModel, "training.loss_weights": StructureLoss}
    for key in schema_keys():
        section, _, name = key.rpartition(".")
        if section in splatted:  # passed as **asdict(...): the constructor must take and use it
            init = splatted[section].__init__
            assert name in inspect.signature(init).parameters, key
            body = inspect.getsource(init).split(":", 1)[1]
            assert body.count(name) >= 2, f"{key} is accepted but not used by {splatted[section].__name__}"
        elif key == "resume":
            assert "split_resume" in (REPO / "src/inktrace_train/__main__.py").read_text()  # read from argv
        else:
            assert any(r == key or r.endswith("." + key) for r in reads), f"no code reads {key}"
    build = (REPO / "src/inktrace_train/train/build.py").read_text()
    assert "InkTraceModel(**asdict(cfg.model))" in build and "StructureLoss(**asdict(t.loss_weights)" in build


def test_keys_the_chosen_options_never_read_are_named():
    """data.hanzi_dir with the default data=kanjivg would change nothing: the user is told."""
    from inktrace_train.config.unused import unused_keys

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        kanjivg = to_config(compose("config", overrides=["data.hanzi_dir=/some/path"]))
        mixed = to_config(compose("config", overrides=["data=mixed", "data.hanzi_dir=/some/path"]))
        structural = to_config(compose("config", overrides=["training.loss_weights.keypoints=2"]))
    assert unused_keys(kanjivg, ["data.hanzi_dir=/some/path"]) == [
        "data.hanzi_dir is set but never read with data.source=kanjivg: only data=hanzi or data=mixed reads it"
    ]
    assert unused_keys(mixed, ["data=mixed", "data.hanzi_dir=/some/path"]) == []
    assert (
        "only the dense stage (model.full_heads=true) reads it"
        in unused_keys(structural, ["training.loss_weights.keypoints=2"])[0]
    )
    one_stage = ["stage.overrides.dense=[training.lr=1e-4]"]  # a key inside the dict counts as the dict
    assert unused_keys(structural, one_stage) == [
        "stage.overrides is set but never read with stage=structural: only stage=all reads it"
    ]


def test_an_unread_key_warns_in_one_line_when_a_run_starts(tmp_path):
    proc = run_cli(
        [*TINY, "data.max_strokes=3", "data.cache_dir=/nowhere", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert out.count("data.cache_dir is set but never read with data.source=synthetic") == 1
    assert "data.max_strokes is set but never read" not in out  # synthetic reads it

"""The ``inktrace-ckpt`` command-line tool: inspect, verify, compare, convert, publish, average and export checkpoints.

    python -m inktrace_train.ckpt inspect FILE|RUN [--json]
    python -m inktrace_train.ckpt verify FILE|DIR
    python -m inktrace_train.ckpt compare A B [--json]      (A, B: checkpoint files or run directories)
    python -m inktrace_train.ckpt convert OLD NEW [--force]
    python -m inktrace_train.ckpt publish CHECKPOINT|RUN OUT [--force]
    python -m inktrace_train.ckpt average A B [C ...] --out OUT [--force]
    python -m inktrace_train.ckpt export CHECKPOINT [--format onnx] --out FILE [--force]

A run directory stands for the best checkpoint of its last stage that has one.

User errors (a missing path, a corrupt file, not a checkpoint) print one line and
exit non-zero: 2 for a missing path or a refused command, 1 for a bad file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from inktrace_train.checkpoint.average import average, check_compatible
from inktrace_train.checkpoint.convert import FORMAT_VERSION
from inktrace_train.checkpoint.store import Checkpoint, CheckpointManager, load_checkpoint, sealed_bytes
from inktrace_train.cli.ckpt_export import add_export
from inktrace_train.cli.quiet import loader_quiet
from inktrace_train.config.schema import flatten
from inktrace_train.errors import ToolError, UserError, reported
from inktrace_train.run.atomic import atomic_write
from inktrace_train.run.rundir import MANIFEST, best_checkpoint_of, shell_command
from inktrace_train.train.transfer import module_of

PROG = "inktrace-ckpt"
TRAINING_SUMMARY = (
    "lr",
    "batch_size",
    "epochs",
    "weight_decay",
    "mask_ratio",
    "seed",
    "precision",
    "grad_accum_steps",
    "warmup_epochs",
)
METRICS = ("stage", "epoch", "global_step", "metric", "best_metric")


def weights(ckpt: Checkpoint) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in ckpt.model_state_dict.items() if isinstance(v, torch.Tensor)}


# --- inspect -------------------------------------------------------------------------
def param_counts(state: Dict[str, torch.Tensor]) -> Dict[str, int]:
    """Elements of the floating-point tensors per module (buffers like step counters excluded)."""
    counts: Dict[str, int] = defaultdict(int)
    for name, value in state.items():
        if value.is_floating_point():
            counts[module_of(name)] += value.numel()
    return dict(sorted(counts.items()))


def config_summary(config: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    config = config or {}
    summary = {f"model.{k}": v for k, v in (config.get("model") or {}).items()}
    training = config.get("training") or {}
    summary.update({f"training.{k}": training[k] for k in TRAINING_SUMMARY if k in training})
    data = config.get("data") or {}
    summary.update({f"data.{k}": data[k] for k in ("source", "img_size") if k in data})
    return summary


def checkpoint_summary(ckpt: Checkpoint) -> Dict[str, Any]:
    """Everything ``inspect`` shows, as plain JSON-able values."""
    meta = ckpt.metadata
    counts = param_counts(weights(ckpt))
    return {
        "version": ckpt.version,
        "converted_from": meta.get("converted_from"),
        "missing": meta.get("missing", []),
        "converted": meta.get("converted"),
        "stage": ckpt.stage,
        "epoch": ckpt.epoch,
        "step_in_epoch": ckpt.step_in_epoch,
        "global_step": ckpt.global_step,
        "metric": ckpt.metric,
        "best_metric": ckpt.best_metric,
        "timestamp": ckpt.timestamp,
        "run_id": meta.get("run_id"),
        "torch_version": meta.get("torch_version"),
        "git_commit": meta.get("git_commit"),
        "parameters": sum(counts.values()),
        "parameters_by_module": counts,
        "optimizer_state": ckpt.optimizer_state_dict is not None,
        "scheduler_state": ckpt.scheduler_state_dict is not None,
        "scaler_state": ckpt.scaler_state_dict is not None,
        "weight_average": {k: ckpt.ema_state_dict[k] for k in ("decay", "updates")} if ckpt.ema_state_dict else None,
        "averaged_from": (meta.get("averaged") or {}).get("sources"),
        "config": config_summary(ckpt.config),
    }


def format_summary(path: str, s: Dict[str, Any]) -> str:
    version = f"{s['version']}"
    if s["converted_from"]:
        version += f" (converted from the {s['converted_from']} layout"
        version += f"; missing: {', '.join(s['missing'])})" if s["missing"] else ")"
    elif s["converted"]:
        done = s["converted"]
        version += f" (written by convert from {done.get('source')}, {done.get('from_layout')} layout)"
    lines = [f"checkpoint:    {path}", f"version:       {version}"]
    for key in (
        "stage",
        "epoch",
        "step_in_epoch",
        "global_step",
        "metric",
        "best_metric",
        "timestamp",
        "run_id",
        "torch_version",
        "git_commit",
    ):
        lines.append(f"{key + ':':<15}{s[key] if s[key] is not None else '-'}")
    lines.append(f"{'parameters:':<15}{s['parameters']:,}")
    lines += [f"  {module:<20}{count:>12,}" for module, count in s["parameters_by_module"].items()]
    present = {True: "present", False: "absent"}
    lines += [
        f"optimizer:     {present[s['optimizer_state']]}",
        f"scheduler:     {present[s['scheduler_state']]}",
        f"grad scaler:   {present[s['scaler_state']]}",
        f"weight avg:    {ema_line(s['weight_average'])}",
    ]
    if s["averaged_from"]:
        lines.append(
            f"averaged from: {len(s['averaged_from'])} checkpoints (ckpt average): {', '.join(s['averaged_from'])}"
        )
    lines.append("config:")
    lines += [f"  {key:<26}{value!r}" for key, value in s["config"].items()] or ["  (none)"]
    return "\n".join(lines)


def ema_line(average: Optional[Dict[str, Any]]) -> str:
    if not average:
        return "absent"
    return f"decay {average['decay']:g}, {average['updates']} updates (predict, evaluate and publish use it)"


def cmd_inspect(args: argparse.Namespace) -> int:
    path = best_checkpoint_of(args.file)
    summary = checkpoint_summary(load_checkpoint(path))
    print(json.dumps(summary, indent=2) if args.json else format_summary(str(path), summary))
    return 0


# --- verify --------------------------------------------------------------------------
def manifest_entries(directory: Path) -> Optional[Dict[str, Any]]:
    """The ``files`` of ``directory/manifest.json``; None without one; ToolError if it is unreadable."""
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ToolError(f"{path} is unreadable or malformed ({type(e).__name__})") from None
    if not isinstance(files, dict):
        raise ToolError(f"{path} is malformed ('files' is not a mapping)")
    return files


def check_file(path: Path) -> str:
    """``OK ...`` when ``path`` matches its manifest (if listed) and loads; raises UserError if not."""
    listed = manifest_entries(path.parent) or {}
    note = "sha256 matches manifest"
    if path.name in listed:
        try:
            problem = CheckpointManager(path.parent, 1, 1).verify(path.name)
        except (KeyError, TypeError):
            problem = f"its entry in {path.parent / MANIFEST} is malformed"
        if problem:
            raise ToolError(problem)
    else:
        note = "not in manifest"
    ckpt = load_checkpoint(path)
    layout = ckpt.metadata.get("converted_from")
    if layout:  # it loads, but as an older layout: say what it lacks
        note += f"; an older layout ({layout}) without {', '.join(ckpt.metadata.get('missing') or ['nothing'])}"
    return f"epoch {ckpt.epoch}, step {ckpt.global_step}, {note}"


def targets(root: Path) -> List[Path]:
    """The checkpoints to verify: the file itself, every *.pth under a directory, and every file a
    manifest under it lists (so a listed file that has gone is reported)."""
    if root.is_file():
        return [root]
    found = set(root.rglob("*.pth"))
    for manifest in root.rglob(MANIFEST):
        with contextlib.suppress(ToolError):  # an unreadable manifest: check_file reports each file beside it
            found.update(manifest.parent / name for name in manifest_entries(manifest.parent) or {})
    return sorted(found)


def reason(message: str, path: Path) -> str:
    """An error message without the file name, which the line already shows."""
    for prefix, replacement in (
        (f"cannot load checkpoint {path}: ", "cannot load: "),
        (f"{path} is ", ""),
        (f"{path}: ", ""),
        (f"{path} ", ""),
    ):
        if message.startswith(prefix):
            return replacement + message[len(prefix) :]
    return message


def cmd_verify(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.exists():
        raise ToolError(f"no such file or directory: {root}", 2)
    paths = targets(root)
    if not paths:
        raise ToolError(f"no checkpoints (*.pth) under {root}", 1)
    bad = 0
    for path in paths:
        try:
            if not path.is_file():
                raise ToolError("listed in the manifest but missing")
            print(f"OK   {path} ({check_file(path)})")
        except (UserError, OSError) as e:  # OSError: e.g. a file it may not read
            bad += 1
            print(f"BAD  {path}: {reason(str(e), path)}")
    print(f"{len(paths)} checked: {len(paths) - bad} OK, {bad} bad")
    return 1 if bad else 0


# --- compare -------------------------------------------------------------------------
def config_diff(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> List[List[Any]]:
    fa, fb = flatten(a or {}), flatten(b or {})
    missing = "<absent>"
    return [
        [k, fa.get(k, missing), fb.get(k, missing)]
        for k in sorted(set(fa) | set(fb))
        if fa.get(k, missing) != fb.get(k, missing)
    ]


def relative_change(
    a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], names: List[str]
) -> Dict[str, Optional[float]]:
    """Per module: ||b - a|| / ||a|| over the named floating-point tensors (None if only ||a|| is 0)."""
    diff: Dict[str, float] = defaultdict(float)
    norm: Dict[str, float] = defaultdict(float)
    for name in names:
        if not a[name].is_floating_point():
            continue
        x, y = a[name].double(), b[name].double()
        diff[module_of(name)] += float((y - x).pow(2).sum())
        norm[module_of(name)] += float(x.pow(2).sum())
    return {m: (math.sqrt(diff[m] / norm[m]) if norm[m] else (0.0 if diff[m] == 0 else None)) for m in sorted(diff)}


def by_module(names: List[str]) -> Dict[str, List[str]]:
    grouped: Dict[str, List[str]] = defaultdict(list)
    for name in sorted(names):
        grouped[module_of(name)].append(name)
    return dict(grouped)


def comparison(a: Checkpoint, b: Checkpoint) -> Dict[str, Any]:
    wa, wb = weights(a), weights(b)
    shared = [n for n in wa if n in wb and wa[n].shape == wb[n].shape]
    sa, sb = checkpoint_summary(a), checkpoint_summary(b)
    return {
        "config_diff": config_diff(a.config, b.config),
        "metrics": {k: [sa[k], sb[k]] for k in METRICS},
        "relative_change": relative_change(wa, wb, shared),
        "shape_differs": by_module([n for n in wa if n in wb and wa[n].shape != wb[n].shape]),
        "only_in_a": by_module([n for n in wa if n not in wb]),
        "only_in_b": by_module([n for n in wb if n not in wa]),
    }


def format_groups(title: str, groups: Dict[str, List[str]]) -> List[str]:
    if not groups:
        return [f"{title}: none"]
    lines = [f"{title}:"]
    for module, names in groups.items():
        short = ", ".join(n[len(module) + 1 :] for n in names)
        lines.append(f"  {module:<20}{len(names)} tensors: {short}")
    return lines


def format_comparison(pa: str, pb: str, c: Dict[str, Any]) -> str:
    lines = [f"A: {pa}", f"B: {pb}", "", "config differences:"]
    width = max([len(k) for k, _, _ in c["config_diff"]] + [3])
    lines += [f"  {k:<{width}}  A={va!r}  B={vb!r}" for k, va, vb in c["config_diff"]] or ["  none"]
    cells = {k: (_metric_cell(va), _metric_cell(vb)) for k, (va, vb) in c["metrics"].items()}
    width = max(len(x) for pair in cells.values() for x in pair) + 2
    lines += ["", f"{'metrics:':<16}{'A':>{width}}{'B':>{width}}"]
    lines += [f"  {k:<14}{va:>{width}}{vb:>{width}}" for k, (va, vb) in cells.items()]
    lines += ["", "relative parameter change ||B - A|| / ||A|| (parameters in both, same shape):"]
    lines += [
        f"  {m:<20}{'n/a (A is zero)' if v is None else f'{v:.6g}'}" for m, v in c["relative_change"].items()
    ] or ["  none shared"]
    lines.append("")
    for title, key in (("shape differs", "shape_differs"), ("only in A", "only_in_a"), ("only in B", "only_in_b")):
        lines += format_groups(title, c[key])
    return "\n".join(lines)


def _metric_cell(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def cmd_compare(args: argparse.Namespace) -> int:
    a, b = best_checkpoint_of(args.a), best_checkpoint_of(args.b)
    result = comparison(load_checkpoint(a), load_checkpoint(b))
    print(json.dumps(result, indent=2) if args.json else format_comparison(str(a), str(b), result))
    return 0


# --- convert -------------------------------------------------------------------------
def check_destination(old: Path, new: Path, force: bool, verb: str = "convert") -> None:
    if not old.exists():
        raise ToolError(f"no such file: {old}", 2)
    if new.resolve() == old.resolve() or (new.exists() and new.samefile(old)):
        raise ToolError(f"refusing to {verb} {old} onto itself: give a different NEW path", 2)
    if new.is_dir():
        raise ToolError(f"{new} is a directory: give a file path", 2)
    if new.exists() and not force:
        raise ToolError(f"{new} exists: refusing to overwrite it (use --force)", 2)
    if not new.parent.is_dir():
        raise ToolError(f"no such directory: {new.parent}", 2)


def write_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """Write ``ckpt`` to ``path`` atomically, then read it back: what convert, publish and average
    write must load as a plain format v1 file, with weights_only=True."""
    atomic_write(path, lambda f: f.write(sealed_bytes(ckpt.to_dict())))
    load_checkpoint(path)


def cmd_convert(args: argparse.Namespace) -> int:
    old, new = Path(args.old), Path(args.new)
    check_destination(old, new, args.force)
    ckpt = load_checkpoint(old)
    meta = ckpt.metadata
    layout, missing = meta.pop("converted_from", None), meta.pop("missing", [])
    if layout:  # provenance under another key: "converted_from" would make every load warn again
        meta["converted"] = {"from_layout": layout, "missing": missing, "source": old.name}
    write_checkpoint(ckpt, new)
    source = f"the {layout} layout" if layout else f"format version {ckpt.version} (already current)"
    print(f"converted {old} ({source}) -> {new} (format version {FORMAT_VERSION})")
    print(f"missing: {', '.join(missing)} (a resume starts these fresh)" if missing else "missing: nothing")
    return 0


# --- publish -------------------------------------------------------------------------
def shareable(ckpt: Checkpoint) -> Checkpoint:
    """The checkpoint without what only a resume needs (optimizer, scheduler, scaler and RNG
    states), its weights the ones to trace with (the weight average, where the run kept one)."""
    ckpt.model_state_dict = ckpt.inference_weights()
    for name in ("optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict", "rng_state", "ema_state_dict"):
        setattr(ckpt, name, None)
    return ckpt


def cmd_publish(args: argparse.Namespace) -> int:
    """What a model is shared as: the weights, config, metric, epoch, stage and provenance of a
    checkpoint, without what only a resume needs (optimizer, scheduler, scaler and RNG states:
    two thirds of the file). Where the run kept a weight average, it is the published weights.
    Such a file is read by predict, evaluate, export, inspect and ``stage.init_from``."""
    source = best_checkpoint_of(args.checkpoint)
    out = Path(args.out)
    check_destination(source, out, args.force, verb="publish")
    ckpt = shareable(with_model_config(load_checkpoint(source), source, "publish"))
    ckpt.metadata["published"] = {"source": str(source), "source_sha256": file_sha256(source)}
    write_checkpoint(ckpt, out)
    size, before = out.stat().st_size, source.stat().st_size
    print(
        f"published {source} -> {out}: {size / 2**20:.1f} MiB (was {before / 2**20:.1f} MiB), sha256 {file_sha256(out)}"
    )
    metric = "its metric" if ckpt.metric is not None else "no metric (no run validated these weights)"
    print(
        f"holds the weights, the config and {metric}: fine-tune from it with {shell_command(f'stage.init_from={out}')}"
    )
    return 0


# --- average -------------------------------------------------------------------------
def cmd_average(args: argparse.Namespace) -> int:
    """A model whose weights are the mean of those of several checkpoints of one architecture
    (a "model soup": fine-tunings of one model, for example). Written like ``publish`` writes,
    with the first checkpoint's config, stage and epoch, no metric (no run validated the mean),
    and the sources and their SHA-256 in ``metadata.averaged``."""
    sources = [best_checkpoint_of(path) for path in args.checkpoints]
    if len(set(sources)) < 2:
        raise ToolError("average needs at least two different checkpoints", 2)
    out = Path(args.out)
    for source in sources:
        check_destination(source, out, args.force, verb="average")
    checkpoints = [shareable(with_model_config(load_checkpoint(source), source, "average")) for source in sources]
    check_compatible([(str(p), c.model_state_dict, c.config) for p, c in zip(sources, checkpoints, strict=True)])
    ckpt = checkpoints[0]
    ckpt.model_state_dict = average([c.model_state_dict for c in checkpoints])
    ckpt.metric = ckpt.best_metric = None
    ckpt.metadata.pop("published", None)
    ckpt.metadata["averaged"] = {
        "sources": [str(p) for p in sources],
        "source_sha256": [file_sha256(p) for p in sources],
    }
    write_checkpoint(ckpt, out)
    print(f"averaged {len(sources)} checkpoints -> {out}: sha256 {file_sha256(out)}")
    print(f"score it before use: python -m inktrace_train.evaluate {out} --split val")
    return 0


def with_model_config(ckpt: Checkpoint, path: Path, verb: str) -> Checkpoint:
    """``ckpt``, if it records the model it holds: without that, nothing can rebuild the model."""
    if not (ckpt.config or {}).get("model"):
        raise ToolError(
            f"cannot {verb} {path}: it holds no model config (an older or foreign file), so predict, evaluate "
            "and stage.init_from could not rebuild its model"
        )
    return ckpt


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- command line --------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, verify, compare, convert, publish, average and export inktrace_train checkpoints (.pth).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Any, text: str, *positionals: str, flag: Optional[str] = None) -> None:
        s = sub.add_parser(name, help=text, description=text)
        for dest in positionals:
            s.add_argument(dest, metavar="FILE|DIR" if dest == "path" else dest.upper())
        if flag:
            s.add_argument(
                flag,
                action="store_true",
                help={"--json": "print JSON instead of text", "--force": "overwrite NEW if it exists"}[flag],
            )
        s.set_defaults(run=run)

    command("inspect", cmd_inspect, "show what a checkpoint (or a run directory's best) holds", "file", flag="--json")
    command(
        "verify",
        cmd_verify,
        "check every checkpoint's size and SHA-256 against its manifest.json and that it loads; exit 1 if any is bad",
        "path",
    )
    command(
        "compare",
        cmd_compare,
        "config, metric and per-module weight differences of A and B (checkpoint files or run directories)",
        "a",
        "b",
        flag="--json",
    )
    command(
        "convert",
        cmd_convert,
        f"write an older-layout checkpoint as format version {FORMAT_VERSION}",
        "old",
        "new",
        flag="--force",
    )
    publish = sub.add_parser(
        "publish",
        help="write a checkpoint to share: weights, config, metric; no optimizer, scheduler or RNG state",
        description=cmd_publish.__doc__,
    )
    publish.add_argument(
        "checkpoint", metavar="CHECKPOINT|RUN", help="a checkpoint file, or a run directory (its best)"
    )
    publish.add_argument("out", metavar="OUT", help="the file to write")
    publish.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    publish.set_defaults(run=cmd_publish)
    averaged = sub.add_parser(
        "average",
        help="write a model whose weights are the mean of several checkpoints' (one architecture)",
        description=cmd_average.__doc__,
    )
    averaged.add_argument(
        "checkpoints", nargs="+", metavar="CHECKPOINT|RUN", help="checkpoint files or run directories (their best)"
    )
    averaged.add_argument("--out", required=True, metavar="OUT", help="the file to write")
    averaged.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    averaged.set_defaults(run=cmd_average)
    add_export(sub)
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    with loader_quiet(), reported(PROG):  # CheckpointError among them: unreadable, corrupt, not a checkpoint
        code = args.run(args)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()

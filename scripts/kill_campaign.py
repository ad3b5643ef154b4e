"""Kill campaign: SIGKILL tiny training runs at random moments, resume each with ``+resume=`` until
it completes, and check that nothing was lost.

    python scripts/kill_campaign.py --kills 200            # the large campaign (about 40 minutes on 2 cores)
    python scripts/kill_campaign.py --kills 12 --seed 1    # what CI runs (tests/test_kill_campaign.py)

Runs are single stages and ``stage=all`` pipelines of the tiny model on synthetic strokes, with a
checkpoint every 2 steps and rotation every epoch, so saves are frequent. Kills are weighted toward
checkpoint writes (``INKTRACE_SAVE_HOOK`` makes each write announce itself) and rotation; the rest
land at uniformly random moments (start-up, before the first save, between stages, early in the
next stage). A run may be killed several times before it is let finish. Checked every time:

- the resume starts cleanly: exit 0, or it is killed itself (a kill before the run was recorded is
  started again by ``+resume=``; before Hydra made the directory, the command is simply rerun);
- it loads the newest complete checkpoint: the stage and step it records in run.json are those of
  the last checkpoint_latest.pth whose write had finished (or was being renamed) when it was killed;
- no temp file survives: none is left in the run directory once it completes;
- the final weights (model and optimizer of every stage's latest, model of its best) equal an
  uninterrupted run's bit for bit, so a later stage started from the earlier stage's best exactly
  as in the uninterrupted pipeline.

Prints one line per kill and ``kills survived: S/N``; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

BASE = [
    "model=tiny",
    "data=synthetic",
    "data.train_samples=64",
    "data.val_samples=32",
    "training.batch_size=16",
    "data.num_workers=0",
    "training.save_interval=1",
    "training.keep_last_n=1",
    "training.save_every_n_steps=2",
]
RUNS = {"single": [*BASE, "training.epochs=3"], "pipeline": [*BASE, "stage=all", "training.epochs=2"]}
HOOK_ENV = "INKTRACE_SAVE_HOOK"


@dataclass
class Reference:
    seconds: float  # wall time of an uninterrupted run
    begins: int  # checkpoint writes it made
    rotations: int
    first_stage_ends: int  # "end" events up to the end of the first stage (pipelines)
    weights: Dict[str, dict]


@dataclass
class Kill:
    run: str
    aim: str  # save | rotate | stage | random
    phase: str = ""  # where it landed, from the hook's events
    problems: List[str] = field(default_factory=list)


def events(hook: Path) -> List[Tuple[str, str, Optional[int]]]:
    """(event, stage/name, step) in order; a torn last line (killed mid-append) is dropped."""
    found = []
    if hook.is_file():
        for line in hook.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                found.append((parts[0], parts[1], None if parts[2] == "None" else int(parts[2])))
    return found


def launch(args: List[str], cwd: Path, hook: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{HOOK_ENV: str(hook)})
    return subprocess.Popen(
        [sys.executable, "-m", "inktrace_train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def final_weights(run_dir: Path) -> Dict[str, dict]:
    """Model and optimizer of each stage's latest, model of its best."""
    found = {}
    for stage_dir in sorted((run_dir / "checkpoints").iterdir()):
        for name, keys in (
            ("checkpoint_latest.pth", ("model_state_dict", "optimizer_state_dict")),
            ("checkpoint_best.pth", ("model_state_dict",)),
        ):
            state = torch.load(stage_dir / name, map_location="cpu", weights_only=True)
            found[f"{stage_dir.name}/{name}"] = {k: state[k] for k in keys}
    return found


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def reference(kind: str, work: Path) -> Reference:
    run_dir, hook = work / f"reference-{kind}", work / f"reference-{kind}.hook"
    start = time.time()
    proc = launch([*RUNS[kind], f"hydra.run.dir={run_dir}"], work, hook)
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"the uninterrupted {kind} run failed:\n{out}")
    seen = events(hook)
    first_stage = seen[0][1].split("/")[0]
    first_ends = sum(1 for e in seen if e[0] == "end" and e[1].startswith(f"{first_stage}/"))
    return Reference(
        seconds=time.time() - start,
        begins=sum(e[0] == "begin" for e in seen),
        rotations=sum(e[0] == "rotate" for e in seen),
        first_stage_ends=first_ends,
        weights=final_weights(run_dir),
    )


def wait_for(proc: subprocess.Popen, hook: Path, event: str, count: int, timeout: float = 300) -> bool:
    """Until the hook has ``count`` events of this kind; False when the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(e[0] == event for e in events(hook)) >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def aim_and_kill(proc: subprocess.Popen, hook: Path, aim: str, ref: Reference, rng: random.Random) -> Optional[str]:
    """Kill ``proc`` at a moment chosen by ``aim``; its output instead if it ended before that moment."""
    if aim == "save":
        wait_for(proc, hook, "begin", rng.randint(1, ref.begins))
        time.sleep(rng.uniform(0, 0.02))
    elif aim == "rotate":
        wait_for(proc, hook, "rotate", rng.randint(1, max(ref.rotations, 1)))
        time.sleep(rng.uniform(0, 0.004))
    elif aim == "stage":
        wait_for(proc, hook, "end", ref.first_stage_ends)
        time.sleep(rng.uniform(0, 2.5))
    else:
        deadline = time.time() + rng.uniform(0, ref.seconds * 1.1)
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.002)
    if proc.poll() is not None:
        return proc.communicate()[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return None


def phase(seen: List[Tuple[str, str, Optional[int]]]) -> str:
    """Where a kill landed, from the killed process's own events."""
    if not seen:
        return "before its first save"
    event, name, _ = seen[-1]
    if event == "begin":
        return f"inside the write of {name}"
    if event == "rotate":
        return f"during rotation ({name})"
    return f"after writing {name}"


def committed(history: List[Tuple[str, str, Optional[int]]]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """Per stage: the step of the last finished checkpoint_latest.pth write, and of a write begun
    but not announced as finished (its rename may have happened before the kill)."""
    done, pending = {}, {}
    for event, name, step in history:
        stage, file = name.split("/")
        if file != "checkpoint_latest.pth":
            continue
        if event == "begin":
            pending[stage] = step
        elif event == "end":
            done[stage] = step
            pending.pop(stage, None)
    return done, pending


def check_resume_record(run_dir: Path, records_before: int, history, kill: Kill) -> None:
    """The resume after ``kill`` loaded the newest complete checkpoint of the stage it continued."""
    status = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    resumes = status.get("resumes", [])
    if len(resumes) <= records_before:
        return  # killed again before it recorded anything
    record = resumes[records_before]
    stage, step = record.get("stage"), record.get("global_step")
    done, pending = committed(history)
    allowed = {done.get(stage)} | ({pending[stage]} if stage in pending else set())
    if step not in allowed:
        kill.problems.append(
            f"resumed {stage} at step {step}; the newest complete checkpoint was at {sorted(map(str, allowed))}"
        )


def resumes(run_dir: Path) -> int:
    status = run_dir / "run.json"
    return len(json.loads(status.read_text()).get("resumes", [])) if status.is_file() else 0


def log(line: str) -> None:
    print(line, flush=True)


def campaign(kills: int, seed: int, work: Path) -> List[Kill]:
    rng = random.Random(seed)
    refs = {kind: reference(kind, work) for kind in RUNS}
    for kind, ref in refs.items():
        log(f"reference {kind}: {ref.seconds:.1f} s, {ref.begins} checkpoint writes, {ref.rotations} rotations")
    results: List[Kill] = []
    while len(results) < kills:
        kind = rng.choice(list(RUNS))
        ref, run_dir = refs[kind], work / f"run{len(results):04d}"
        mine = run_until_done(kind, ref, run_dir, min(rng.choice([1, 1, 2, 3]), kills - len(results)), rng)
        verify_run(run_dir, ref, mine)
        for k in mine:
            results.append(k)
            verdict = "ok" if not k.problems else "; ".join(k.problems)
            log(f"kill {len(results):4d} {kind:8s} aimed at {k.aim:6s} landed {k.phase}: {verdict}")
    return results


def run_until_done(kind: str, ref: Reference, run_dir: Path, planned: int, rng: random.Random) -> List[Kill]:
    """Start a run, kill it ``planned`` times (each time resuming it), then let it finish."""
    start = [*RUNS[kind], f"hydra.run.dir={run_dir}"]
    aims = ["save", "save", "save", "rotate", "random", "random"] + (["stage", "stage"] if kind == "pipeline" else [])
    mine: List[Kill] = []
    history: List[Tuple[str, str, Optional[int]]] = []
    args, check, n = start, None, 0
    while True:
        hook, before = run_dir.parent / f"{run_dir.name}.hook{n}", resumes(run_dir)
        n += 1
        proc = launch(args, run_dir.parent, hook)
        kill, out = None, None
        if len(mine) < planned:
            kill = Kill(run=run_dir.name, aim=rng.choice(aims))
            out = aim_and_kill(proc, hook, kill.aim, ref, rng)
        else:
            out = proc.communicate(timeout=600)[0]
        seen = events(hook)
        if check is not None:  # this process resumed after a kill: what did it load?
            check_resume_record(run_dir, before, history, check)
        history += seen
        if out is None:  # killed
            kill.phase = phase(seen)
            mine.append(kill)
            check = kill
            args = [f"+resume={run_dir}"] if (run_dir / ".hydra").is_dir() else start
            continue
        if proc.returncode != 0:
            tail = out.strip().splitlines()[-1:] if out else []
            (mine or [Kill(run=run_dir.name, aim="none")])[-1].problems.append(
                f"{args[-1]} exited {proc.returncode}: {tail}"
            )
        if not mine:  # it finished before the first aimed moment: try again with a new run
            shutil.rmtree(run_dir, ignore_errors=True)
            for stale in run_dir.parent.glob(f"{run_dir.name}.hook*"):
                stale.unlink()
            args, history, n = start, [], 0
            continue
        return mine


def verify_run(run_dir: Path, ref: Reference, mine: List[Kill]) -> None:
    temps = [str(p.relative_to(run_dir)) for p in run_dir.rglob(".*.tmp*")]
    if temps:
        mine[-1].problems.append(f"temp files left: {temps}")
    try:
        weights = final_weights(run_dir)
    except Exception as e:  # a missing or unreadable final checkpoint
        mine[-1].problems.append(f"final checkpoints unreadable: {e}")
        return
    for key, expected in ref.weights.items():
        if key not in weights or not same(weights[key], expected):
            mine[-1].problems.append(f"{key} differs from the uninterrupted run")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills to make (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir, removed)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill_campaign_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = campaign(args.kills, args.seed, work.resolve())
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    survived = sum(not k.problems for k in results)
    phases = Counter(k.phase.split(" (")[0].split(" of ")[0].split(" writing ")[0] for k in results)
    print("landed: " + ", ".join(f"{n} {p}" for p, n in phases.most_common()))
    print(f"kills survived: {survived}/{len(results)}")
    return 0 if survived == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

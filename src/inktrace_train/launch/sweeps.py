"""Sweep bookkeeping: one record per job, written as the job ends, and a summary table.

Hydra skips its end-of-sweep callback when a job raises, so every job writes its
own ``job.json`` and the summary is rebuilt from the job directories after each
job: it is current even if the sweep is killed. ``python -m inktrace_train.report``
rebuilds it for any sweep or runs directory. No torch import here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from inktrace_train.run.atomic import write_json, write_text
from inktrace_train.run.rundir import BEST, MANIFEST, RunDir

JOB_RECORD = "job.json"
COLUMNS = ("run", "stage", "overrides", "status", "metric", "best_checkpoint", "wall_time_s", "error")
STAGE_ORDER = ("structural", "dense")  # rows are ranked within a stage: their metrics differ in kind


def write_job_record(job_dir: Path, record: Dict[str, Any]) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    write_json(job_dir / JOB_RECORD, record)


def read_job_record(job_dir: Path) -> Optional[Dict[str, Any]]:
    """A job's record; None when there is none, or it is torn (a job's run.json says the rest)."""
    record = _read_json(job_dir / JOB_RECORD)
    return record if record is not None and isinstance(record.get("overrides"), list) else None


def run_result(run: Path) -> Dict[str, Any]:
    """The status of a run, and the stage, metric and best checkpoint of its last stage with a
    metric (the best so far of one not finished), from its run.json."""
    row = _from_run_json(run)
    return {k: row[k] for k in ("status", "stage", "metric", "best_checkpoint")}


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _from_run_json(run: Path) -> Dict[str, Any]:
    """A row for a run without a job record (a single run, or a job killed mid-way). A stage
    that has not finished reports its best so far, from its checkpoint manifest."""
    state = _read_json(run / "run.json") or {}
    names = list(state.get("pipeline", state.get("stages", {})))
    stages = [state["stages"].get(name, {}) for name in names]
    statuses = [s.get("status") for s in stages]
    stopped = [s for s in statuses if s in ("interrupted", "preempted")]
    status = (
        "done" if set(statuses) == {"done"} else "failed" if "failed" in statuses else (stopped or ["unfinished"])[0]
    )
    reported = None  # the last stage with a metric: run.json's when done, the manifest's best so far
    for name, stage in zip(names, stages, strict=True):
        manifest = _read_json(RunDir(run).checkpoint_dir(name) / MANIFEST) or {}
        metric = stage.get("best_metric", manifest.get("best_metric"))
        if metric is not None or reported is None:
            found = Path("checkpoints", name, BEST)
            best = stage.get("best_checkpoint") or (str(found) if (run / found).is_file() else None)
            reported = {"stage": name, "metric": metric, "best_checkpoint": best}
    row = reported or {"stage": None, "metric": None, "best_checkpoint": None}
    return {**row, "status": status, "wall_time_s": _train_time(stages), "error": None}


def _train_time(stages: List[Dict[str, Any]]) -> Optional[float]:
    """The run's training time, every session of every stage (None: a run from before run.json
    recorded it, or one whose sessions were all killed outright)."""
    times = [s["train_time_s"] for s in stages if _is_number(s.get("train_time_s"))]
    return round(sum(times), 1) if times else None


def _is_run(directory: Path) -> bool:
    """A job record, or a run.json that a run wrote (a mapping of stages): not any stray file."""
    if (directory / JOB_RECORD).is_file():
        return _read_json(directory / JOB_RECORD) is not None
    state = _read_json(directory / "run.json")
    return state is not None and isinstance(state.get("stages"), dict)


def _rank(row: Dict[str, Any]) -> tuple:
    stage = STAGE_ORDER.index(row["stage"]) if row["stage"] in STAGE_ORDER else len(STAGE_ORDER)
    return stage, -row["metric"] if _is_number(row["metric"]) else math.inf


def collect(root: Path) -> List[Dict[str, Any]]:
    """One row per run or job under ``root`` (itself included), grouped by the stage whose
    metric it reports, best metric first within each stage."""
    rows = []
    runs = sorted({marker.parent for marker in (*root.rglob(JOB_RECORD), *root.rglob("run.json"))})
    for run in filter(_is_run, runs):
        record = _read_json(run / JOB_RECORD) if (run / JOB_RECORD).is_file() else _from_run_json(run)
        if (run / JOB_RECORD).is_file() and (run / "run.json").is_file():
            from_run = _from_run_json(run)
            if record.get("stage") is None:
                record["stage"] = from_run["stage"]  # a job record from before the stage column
            if from_run["wall_time_s"] is not None:  # all its sessions; job.json has the last one's
                record["wall_time_s"] = from_run["wall_time_s"]
        rows.append(
            {
                "path": run,
                "run": str(run.relative_to(root)) if run != root else ".",
                "overrides": " ".join(record.get("overrides") or RunDir(run).launch_overrides()),
                **{k: record.get(k) for k in COLUMNS if k not in ("run", "overrides")},
            }
        )
    return sorted(rows, key=_rank)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column == "wall_time_s" else f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_summary(root: Path) -> Optional[str]:
    """Write ``summary.csv`` and ``summary.md`` in ``root``; returns the markdown (None: no runs)."""
    rows = collect(root)
    if not rows:
        return None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(root / "summary.csv", buffer.getvalue())
    # The markdown shows only the overrides that differ between runs; the CSV keeps them all.
    common = set.intersection(*(set(r["overrides"].split()) for r in rows))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        shown = dict(r, overrides=" ".join(o for o in r["overrides"].split() if o not in common))
        lines.append("| " + " | ".join(_cell(shown[c], c) for c in COLUMNS) + " |")
    done = sum(r["status"] == "done" for r in rows)
    markdown = (
        f"# Summary of {root}\n\n{done} of {len(rows)} runs done, best metric first within each stage. "
        f"Common overrides: `{' '.join(sorted(common)) or 'none'}`\n\n" + "\n".join(lines) + "\n"
    )
    write_text(root / "summary.md", markdown)
    return markdown

"""One table per sweep: every job's choices, overrides and outcome in ``<sweep dir>/results.csv``.

Each job leaves its own ``summary.json`` in ``<sweep dir>/<job number>/``; this gathers them so a
sweep can be compared (or plotted) without walking directories. It reads only files, so it runs
whenever a sweep ends (:mod:`.sweep_control`), however it ends, and can be run by hand on a sweep
directory (:func:`aggregate_sweep`). A job that started but left no summary (killed) is listed as
interrupted; one still running as running.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import yaml

from analog_train.runner.rundir import live_holder

RESULTS = "results.csv"
# summary key -> decimals kept in results.csv
OUTCOME = {"epochs_completed": None, "samples_seen": None, "test_accuracy": 3, "wall_seconds": 2,
           "train_seconds": 2, "compile_seconds": 2, "seconds_per_60k_samples": 2}
FINAL = {"test_loss": 5, "train_loss": 5}  # of the last epoch, mean over replicas
JOB_FILES = ("summary.json", "checkpoint.pt", "metrics.csv", "run.lock")


def _job_number(job_dir: Path) -> Optional[int]:
    digits = job_dir.name.split("_", 1)[0]
    return int(digits) if digits.isdigit() else None


def _overrides(job_dir: Path, summary: dict[str, Any]) -> list[str]:
    if "overrides" in summary:
        return [str(o) for o in summary["overrides"]]
    saved = job_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in yaml.safe_load(saved.read_text()) or []] if saved.is_file() else []


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def _job_row(job_dir: Path) -> dict[str, Any]:
    try:
        summary = json.loads((job_dir / "summary.json").read_text())
    except (OSError, ValueError):
        running = live_holder(job_dir) is not None
        summary = {"status": "running" if running else "interrupted",
                   "reason": "" if running else "ended without a summary (killed)"}
    overrides = _overrides(job_dir, summary)
    row: dict[str, Any] = {"job": summary.get("job", _job_number(job_dir)), "status": summary.get("status"),
                           "overrides": " ".join(overrides)}
    row.update({group: choice for group, choice in (summary.get("choices") or {}).items()})
    for item in overrides:
        key, _, value = item.partition("=")
        row.setdefault(key.lstrip("+~"), value)
    for key, decimals in OUTCOME.items():
        value = summary.get(key)
        row[key] = round(value, decimals) if decimals is not None and isinstance(value, float) else value
    final = summary.get("final") or []
    for key, decimals in FINAL.items():
        values = [f[key] for f in final if key in f]
        row[f"final_{key}"] = round(sum(values) / len(values), decimals) if values else None
    for array, counts in (summary.get("endurance") or {}).items():
        for stat, value in counts.items():
            row[f"{array}_{stat}"] = _significant(value)
    error = summary.get("error") or {}
    row["error_type"] = error.get("type")
    row["reason"] = summary.get("reason", "")
    return row


def aggregate_sweep(sweep_dir: Path | str) -> pd.DataFrame:
    """Rows of every job under ``sweep_dir`` that started, by job number; written to ``results.csv``."""
    sweep_dir = Path(sweep_dir)
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and any((p / f).exists() for f in JOB_FILES)] \
        if sweep_dir.is_dir() else []
    frame = pd.DataFrame([_job_row(job) for job in jobs])
    if not frame.empty:
        frame = frame.sort_values("job", kind="stable").reset_index(drop=True)
        for column in ("job", "epochs_completed", "samples_seen"):
            if column in frame:
                frame[column] = frame[column].astype("Int64")
        tmp = sweep_dir / (RESULTS + ".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(sweep_dir / RESULTS)
    return frame

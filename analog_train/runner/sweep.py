"""One table per sweep: every job's overrides and outcome in ``<sweep dir>/results.csv``.

Each job already leaves its own ``summary.json``; this gathers them so a sweep can be compared
(or plotted) without walking directories. It runs as a Hydra callback when the multirun ends,
and reads only files, so a sweep whose process was killed can be aggregated afterwards with
:func:`aggregate_sweep` too: finished jobs are on disk either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

RESULTS = "results.csv"
OUTCOME = ("status", "reason", "epochs_completed", "samples_seen", "test_accuracy", "wall_seconds",
           "seconds_per_60k_samples")


def _job_row(job_dir: Path) -> dict[str, Any]:
    summary = json.loads((job_dir / "summary.json").read_text())
    overrides = job_dir / ".hydra" / "overrides.yaml"
    row: dict[str, Any] = {"job": job_dir.name}
    for item in yaml.safe_load(overrides.read_text()) if overrides.is_file() else []:
        key, _, value = str(item).partition("=")
        row[key.lstrip("+~")] = value
    row.update({k: summary.get(k) for k in OUTCOME})
    for array, counts in (summary.get("endurance") or {}).items():
        for stat, value in counts.items():
            row[f"{array}_{stat}"] = value
    return row


def aggregate_sweep(sweep_dir: Path | str) -> pd.DataFrame:
    """Rows of every job under ``sweep_dir`` with a ``summary.json``; written to ``results.csv``."""
    sweep_dir = Path(sweep_dir)
    jobs = sorted(p.parent for p in sweep_dir.glob("*/summary.json"))
    frame = pd.DataFrame([_job_row(job) for job in jobs])
    if not frame.empty:
        tmp = sweep_dir / (RESULTS + ".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(sweep_dir / RESULTS)
    return frame


class AggregateResults(Callback):
    """Hydra callback: write ``results.csv`` into the sweep directory when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        frame = aggregate_sweep(config.hydra.sweep.dir)
        if not frame.empty:
            print(f"{len(frame)} jobs -> {Path(config.hydra.sweep.dir) / RESULTS}")

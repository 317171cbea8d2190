"""The files a run leaves: ``metrics.csv`` (one row per epoch and replica, flushed at once) and ``summary.json``."""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path
from typing import Any

class MetricsWriter:
    """Appends epoch rows to ``metrics.csv`` and forces them to disk, so a killed run keeps them.

    Columns: epoch, replica, samples_seen, train_loss, the task's test metrics, lr, seconds, samples_per_s.
    """

    def __init__(self, out_dir: Path, test_metrics: tuple[str, ...] = ("test_loss", "test_error")) -> None:
        self.path = Path(out_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        columns = ("epoch", "replica", "samples_seen", "train_loss", *test_metrics, "lr", "seconds", "samples_per_s")
        self._writer = csv.DictWriter(self._file, fieldnames=columns)
        self._writer.writeheader()
        self._flush()

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.writerows(rows)
        self._flush()

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` atomically (a temp file renamed), so it is never half-written."""
    path = Path(out_dir) / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    tmp.replace(path)
    return path


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("analog-train", "torch", "numpy", "hydra-core", "omegaconf", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out

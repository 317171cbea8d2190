"""The files a run leaves: ``metrics.csv`` (one row per epoch and replica, flushed at once) and ``summary.json``."""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

class MetricsWriter:
    """Appends epoch rows to ``metrics.csv`` and forces them to disk, so a killed run keeps them.

    Columns: epoch, replica, what sets the replica apart (``population``: device keys, repeat),
    samples_seen, train_loss, the task's test metrics, lr, seconds, samples_per_s.
    ``rows``: the rows a resumed run had written before its checkpoint (the file starts over with them).
    """

    def __init__(self, out_dir: Path, test_metrics: tuple[str, ...] = ("test_loss", "test_error"),
                 rows: Sequence[dict[str, Any]] = (), replica_columns: tuple[str, ...] = ()) -> None:
        self.path = Path(out_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        columns = ("epoch", "replica", *replica_columns, "samples_seen", "train_loss", *test_metrics, "lr", "seconds",
                   "samples_per_s")
        self._writer = csv.DictWriter(self._file, fieldnames=columns)
        self._writer.writeheader()
        self._writer.writerows(rows)
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


def hydra_job(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra job this process runs: config-group choices (in the order of ``cfg``'s keys),
    command-line overrides and, in a sweep, the job number (empty outside a Hydra app).

    An optional group's choice (``algo_device``, ``model_algo``: a name made from other choices) counts only
    where that config exists: Hydra records the name it looked for even when it loaded nothing.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    keys = list(cfg)
    groups = sorted((k for k in hydra.runtime.choices if not k.startswith("hydra/")
                     and (loader is None or hydra.runtime.choices[k] is None
                          or hydra.runtime.choices[k] in loader.get_group_options(k))),
                    key=lambda k: keys.index(k) if k in keys else len(keys))
    out: dict[str, Any] = {"choices": {k: hydra.runtime.choices[k] for k in groups},
                           "overrides": list(hydra.overrides.task)}
    if hydra.mode == RunMode.MULTIRUN:
        out["job"] = int(hydra.job.num)
    return out


def common_summary(started: float, cfg: DictConfig) -> dict[str, Any]:
    """What every summary ends with: wall time, the process's peak memory, the Hydra job, versions and the
    resolved config."""
    return {"wall_seconds": round(time.time() - started, 3), "peak_memory_mib": peak_memory_mib(), **hydra_job(cfg),
            "versions": package_versions(), "config": OmegaConf.to_container(cfg, resolve=True)}


def peak_memory_mib() -> float | None:
    """The peak resident memory of this process so far (None where the platform does not say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB elsewhere

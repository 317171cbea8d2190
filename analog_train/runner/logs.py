"""What a run tells its job log: Python ``logging``, which Hydra sends to the console and to
``<run dir>/analog-train.log``, so a sweep, CI or a SLURM job shows progress without a terminal.

A run logs the resolved config choices at start, one line per epoch, warnings (Python warnings are
routed into the log) and its final status. The traceback of a failure goes to the log file only:
the console gets one line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence


def log_start(log: logging.Logger, what: str, out_dir: Path, choices: Mapping[str, Any]) -> None:
    """``train in DIR: algo=agad device=reram ...`` (the config groups as Hydra resolved them)."""
    logging.captureWarnings(True)
    log.info("%s in %s: %s", what, out_dir, " ".join(f"{k}={v}" for k, v in choices.items()))


def log_epoch(log: logging.Logger, epoch: int, epochs: int, rows: Sequence[Mapping[str, Any]],
              pulses: Mapping[str, Mapping[str, float]]) -> None:
    """One line per epoch: losses, test error, speed and pulses per device so far (mean over replicas)."""
    def mean(key: str) -> float:
        return sum(float(r[key]) for r in rows) / len(rows)

    replicas = f" (mean of {len(rows)} replicas)" if len(rows) > 1 else ""
    per_device = "".join(f", {name} pulses/device {v['mean']:.4g} (max {v['max']:.4g})" for name, v in pulses.items())
    log.info("epoch %d/%d: train loss %.4f, test loss %.4f, test error %.2f %%%s, %.0f samples/s%s",
             epoch, epochs, mean("train_loss"), mean("test_loss"), mean("test_error"), replicas,
             mean("samples_per_s"), per_device)


def job_log_files() -> list[Path]:
    """The files the root logger writes to (Hydra's job log), if any."""
    return [Path(h.baseFilename) for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def _to_files(log: logging.Logger, record: logging.LogRecord) -> None:
    """Hand ``record`` to the root logger's file handlers only (to ``log`` itself when there are none)."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        log.handle(record)
    for handler in files:
        if record.levelno >= handler.level:
            handler.handle(record)


def log_traceback(log: logging.Logger, exc: BaseException) -> None:
    """The traceback of ``exc`` into the job log file (the console gets the one-line reason)."""
    _to_files(log, log.makeRecord(log.name, logging.ERROR, __file__, 0, "traceback of the failure:", (),
                                  (type(exc), exc, exc.__traceback__)))


def log_to_file(log: logging.Logger, level: int, message: str) -> None:
    """``message`` into the job log file only (for what the console already shows another way)."""
    _to_files(log, log.makeRecord(log.name, level, __file__, 0, message, (), None))


def log_end(log: logging.Logger, status: str, detail: str, out_dir: Path, traceback_in: Optional[Path] = None) -> None:
    """The final line: ``completed: test accuracy 97.12 % -> DIR`` (a warning or error unless completed)."""
    level = logging.INFO if status == "completed" else logging.ERROR if status == "failed" else logging.WARNING
    where = f" (traceback in {traceback_in})" if traceback_in else ""
    log.log(level, "%s: %s -> %s%s", status, detail, out_dir, where)

"""A sweep that survives: one sweep per directory, a stop that reaches every job, results at any end.

:class:`SweepControl` is a Hydra callback (``conf/config.yaml``, ``hydra.callbacks``). When a
multirun starts, in the process that launches the jobs, it

* refuses (one line, exit 2) a sweep directory that a live sweep holds (``sweep.lock``) or that
  holds a sweep of other overrides (``multirun.yaml``); the same sweep again is a re-run, whose
  jobs skip what they finished and resume what was interrupted (:mod:`.job`);
* turns SIGINT/SIGTERM into a stop: ``STOP`` is written into the sweep directory, so jobs not yet
  started do not start, and SIGTERM goes on to every running job (their ``run.lock`` names the
  process), which ends as interrupted after its current mini-batch. Without this, a SIGTERM to
  the parent of a joblib sweep (what a scheduler sends) killed the parent and left the workers
  running on. A second signal stops the parent at once (joblib then terminates the workers);
* writes ``results.csv`` when the multirun ends, or at exit if it ended by an exception or a second
  signal (:mod:`.sweep`), and exits 130 if stopped, 4 if a job failed.

State lives in this module, not in the callback object: Hydra pickles its callbacks into joblib's
worker processes, and signal handlers belong to the process anyway.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from analog_train.runner.rundir import LOCK, RunDirTaken, live_holder
from analog_train.runner.signals import StopSignals
from analog_train.runner.status import EXIT_CODES, FAILED, INTERRUPTED
from analog_train.runner.sweep import RESULTS, aggregate_sweep

STOP = "STOP"
SWEEP_LOCK = "sweep.lock"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
log = logging.getLogger(__name__)


class _Sweep:
    """The multirun this process launches (at most one)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.dir = sweep_dir
        self.signals = StopSignals(on_first=self.stop)
        self.finished = False

    def stop(self, signum: int) -> None:
        """First signal: no new jobs, and SIGTERM to the running ones (their own process excepted)."""
        (self.dir / STOP).touch()
        for lock in self.dir.glob(f"*/{LOCK}"):
            pid = live_holder(lock.parent)
            if pid is not None and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def finish(self) -> int:
        """``results.csv`` from what is on disk; the lock given back. Returns the sweep's exit code."""
        if self.finished:
            return 0
        self.finished = True
        self.signals.__exit__(None, None, None)
        frame = aggregate_sweep(self.dir)
        (self.dir / SWEEP_LOCK).unlink(missing_ok=True)
        stopped = self.signals.requested or (self.dir / STOP).exists()
        if not frame.empty:
            counts = frame["status"].value_counts().to_dict()
            log.info("%d jobs (%s) -> %s", len(frame), ", ".join(f"{n} {s}" for s, n in counts.items()),
                     self.dir / RESULTS)
        if stopped:
            return EXIT_CODES[INTERRUPTED]
        if not frame.empty and (frame["status"] == FAILED).any():
            return EXIT_CODES[FAILED]
        return 0


_current: Optional[_Sweep] = None


def _claim(sweep_dir: Path, overrides: list[str]) -> None:
    """Refuse a directory that a live sweep holds or that holds another sweep; then hold it."""
    lock = sweep_dir / SWEEP_LOCK
    try:
        pid = int(lock.read_text().split()[0])
        os.kill(pid, 0)
        raise RunDirTaken(f"hydra.sweep.dir={sweep_dir} is in use by a running sweep (pid {pid})")
    except (OSError, ValueError, IndexError):
        pass  # no lock, or its process is gone
    previous = sweep_dir / "multirun.yaml"
    if previous.is_file():
        before = [str(o) for o in OmegaConf.load(previous).hydra.overrides.task]
        if before != overrides:
            raise RunDirTaken(f"hydra.sweep.dir={sweep_dir} holds a sweep of other overrides ({' '.join(before)}); "
                              "choose another hydra.sweep.dir, or repeat those overrides to re-run it")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getpid()}\n")
    (sweep_dir / STOP).unlink(missing_ok=True)


def _finish_at_exit() -> None:
    if _current is not None:
        _current.finish()


class SweepControl(Callback):
    """Hydra callback: see the module docstring."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _current
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            _claim(sweep_dir, [str(o) for o in config.hydra.overrides.task])
        except RunDirTaken as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        _current = _Sweep(sweep_dir)
        _current.signals.__enter__()
        atexit.register(_finish_at_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _current is None:
            return
        code = _current.finish()
        if code:
            sys.exit(code)


def stopping(job_dir: Path) -> bool:
    """Whether the sweep that ``job_dir`` belongs to was told to stop (jobs not yet started do not start)."""
    return (Path(job_dir).parent / STOP).exists()


def threads_per_job(hydra_cfg: Any, cores: Optional[int] = None) -> Optional[int]:
    """Torch threads for a job of a parallel (joblib) sweep: cores // parallel jobs, at least 1.

    None for other launchers (a sequential job may use every core; submitit gets its own cores).
    """
    launcher = hydra_cfg.launcher
    if launcher.get("_target_") != JOBLIB_LAUNCHER:
        return None
    from joblib import cpu_count

    cores = cores or cpu_count()
    n_jobs = launcher.get("n_jobs") or 1
    parallel = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = every core
    return max(1, cores // max(1, min(parallel, cores)))

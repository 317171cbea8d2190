"""One Hydra job, from its directory to its exit code: the body of ``analog-train``'s task function.

A single run's directory was claimed before Hydra wrote into it (:class:`.rundir.ClaimRunDir`). A
sweep job claims its own; finds it done (completed or diverged: skipped) or interrupted (resumed
from its checkpoint) if the job ran before with the same config, and otherwise moves the earlier
results aside and runs afresh; sets its torch threads so that parallel jobs share the cores. Then the
config is validated and the torch device checked, before any data is loaded: an invalid point of a
sweep becomes a ``failed`` job and the sweep goes on; a single run exits 2 with one line. Last,
the train loop or a paper experiment runs, and the job logs how it ended.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from analog_train.config import ConfigError, validate
from analog_train.runner.fig5 import is_training_experiment, training_run
from analog_train.runner.logs import job_log_files, log_end, log_start, log_to_file, log_traceback
from analog_train.runner.metrics import common_summary, hydra_job, write_summary
from analog_train.runner.rundir import RunDirTaken, claim, earlier_config_change, previous_status, release, set_aside
from analog_train.runner.signals import StopSignals
from analog_train.runner.status import COMPLETED, EXIT_CODES, FAILED, INTERRUPTED, Outcome, exit_code_of
from analog_train.runner.sweep_control import stopping, threads_per_job

log = logging.getLogger("analog_train")
FINAL = ("completed", "diverged")  # a sweep job found with one of these is not run again


@dataclass
class JobEnd:
    status: str
    exit_code: int


def require_torch_device(name: str) -> None:
    """ConfigError unless this torch can place tensors on ``name`` (``cuda`` on a CPU-only build)."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"torch_device={name}: {err}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"torch_device={name}: this torch ({torch.__version__}) has no CUDA device; "
                              "use torch_device=cpu or install a CUDA build of torch (TORCH_SPEC)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"torch_device={name}: only {torch.cuda.device_count()} CUDA device(s) here")


def run_job(cfg: DictConfig, out_dir: Path, sweep: bool) -> JobEnd:
    """Run one job into ``out_dir``; ``sweep``: a job of a multirun (``out_dir`` is its own)."""
    out_dir = Path(out_dir)
    with StopSignals():  # from here on a signal is a stop request, not the end of the process
        try:
            if sweep:
                if stopping(out_dir):
                    log.warning("not started: the sweep was stopped -> %s", out_dir)
                    return JobEnd("not started", EXIT_CODES[INTERRUPTED])
                claim(out_dir, fresh=False)
            return _run(cfg, out_dir, sweep)
        except RunDirTaken as err:  # another process runs this very job: leave its files alone
            log.error("not started: %s", err)
            return JobEnd("not started", EXIT_CODES[FAILED])
        except Exception as err:  # noqa: BLE001 - e.g. a full disk; a sweep must go on with its other jobs
            log_traceback(log, err)
            log.error("failed: %s: %s -> %s", type(err).__name__, err, out_dir)
            return JobEnd(FAILED, EXIT_CODES[FAILED])
        finally:
            release(out_dir)


def _run(cfg: DictConfig, out_dir: Path, sweep: bool) -> JobEnd:
    started = time.time()
    # plain runs: an empty node before validation, None after; Fig. 5's jobs are training runs
    experiment = bool(cfg.get("experiment")) and not is_training_experiment(cfg)
    before = previous_status(out_dir) if sweep else None
    if sweep and cfg.threads is None:
        with open_dict(cfg):
            cfg.threads = threads_per_job(HydraConfig.get())
    choices = {k: v for k, v in hydra_job(cfg).get("choices", {}).items() if v is not None}
    with Outcome(log) as checks:
        validate(cfg)
        if is_training_experiment(cfg):
            cfg = training_run(cfg)
        require_torch_device(cfg.torch_device)
    if before is not None:  # a sweep job that ran before: the same job is skipped or resumed
        change = earlier_config_change(out_dir, cfg) if checks.status == COMPLETED else "an invalid config now"
        if change is None and before in FINAL:
            log.info("skipped: this job %s before -> %s", before, out_dir)
            return JobEnd(before, 0)
        if change is None and not experiment and (out_dir / "checkpoint.pt").is_file():
            with open_dict(cfg):
                cfg.resume = str(out_dir)
        elif change is not None:
            log.warning("this job's config changed since it ran (%s): its earlier results moved to %s",
                        change, set_aside(out_dir))
    log_start(log, f"experiment {cfg.experiment.name}" if experiment else "train", out_dir, choices)
    if checks.status != COMPLETED:
        summary = {**checks.record(), **common_summary(started, cfg)}
        write_summary(out_dir, summary)
        detail = summary["reason"]
    elif experiment:
        from analog_train.runner.experiment import run_experiment

        summary = run_experiment(cfg, out_dir)
        detail = f"experiment {cfg.experiment.name}" + (f" ({summary['reason']})" if summary.get("reason") else "")
    else:
        from analog_train.runner.train import train

        summary = train(cfg, out_dir).summary
        acc = summary.get("test_accuracy")
        detail = f"test accuracy {acc:.2f} %" if acc is not None and summary["status"] == COMPLETED \
            else summary.get("reason", "")
    status, code = summary["status"], exit_code_of(summary)
    if status == FAILED and code == EXIT_CODES[FAILED]:
        files = job_log_files()
        log_end(log, status, detail, out_dir, traceback_in=files[0] if files else None)
    elif status == FAILED and not sweep:  # a bad value or missing data: one line, no traceback
        message = (summary.get("error") or {}).get("message", detail)
        print(f"error: {message}", file=sys.stderr)
        log_to_file(log, logging.ERROR, f"failed: {message} -> {out_dir}")
    else:
        log_end(log, status, detail, out_dir)
    return JobEnd(status, code)

"""Dispatch of the paper experiments (``experiment=<id>``, SPEC 7) that are not the train loop.

Each runner writes its tidy CSV(s) into the run directory and returns a small dict; this module
adds ``summary.json`` (status, timings, resolved config) and, with ``plot=true``, the figure drawn
from the CSV by the matching function of :mod:`analog_train.plots`.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from analog_train.runner.metrics import common_summary, write_summary
from analog_train.runner.signals import StopSignals
from analog_train.runner.status import Outcome

# experiment name -> (runner "module:function", CSV it writes, plot "module:function")
EXPERIMENTS: dict[str, tuple[str, str, str]] = {
    "weight_programming": ("analog_train.runner.weight_programming:weight_programming", "weight_programming.csv",
                           "analog_train.plots.weight_programming:plot_weight_programming"),
    "asymmetry": ("analog_train.runner.asymmetry:asymmetry", "asymmetry.csv",
                  "analog_train.plots.asymmetry:plot_asymmetry"),
    "toy_mechanism": ("analog_train.runner.toy_experiment:toy_experiment", "toy_mechanism.csv",
                      "analog_train.plots.toy_mechanism:plot_toy_mechanism"),
}

log = logging.getLogger(__name__)


def resolve_callable(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (imported only when the experiment runs)."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def run_experiment(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run ``cfg.experiment.name`` into ``out_dir``; always leaves ``summary.json``.

    SIGINT or SIGTERM ends the experiment early as ``interrupted``: the runners stop between
    samples (:func:`.signals.requested`) and write the rows computed so far; no plot is drawn. An
    exception ends it as ``failed`` (:mod:`.status`).
    """
    started = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runner, csv_name, plotter = EXPERIMENTS[cfg.experiment.name]
    results: dict[str, Any] = {"experiment": cfg.experiment.name}
    with StopSignals() as stop:
        with Outcome(log) as outcome:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            outcome.stage = f"experiment {cfg.experiment.name}"
            results.update(resolve_callable(runner)(cfg, out_dir))
            stop.check()  # stopped early: the CSV holds what was computed
            if cfg.plot:
                figures = resolve_callable(plotter)(out_dir / csv_name, out_dir / Path(csv_name).stem)
                results["figures"] = [str(p) for p in figures]
        summary = {**outcome.record(), **results, **common_summary(started, cfg)}
        write_summary(out_dir, summary)
    return summary

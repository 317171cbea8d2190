"""Dispatch of the paper experiments (``experiment=<id>``, SPEC 7) that are not the train loop.

Each runner writes its tidy CSV(s) into the run directory and returns a small dict; this module
adds ``summary.json`` (status, timings, resolved config) and, with ``plot=true``, the figure drawn
from the CSV by the matching function of :mod:`analog_train.plots`.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from analog_train.runner.metrics import package_versions, write_summary

# experiment name -> (runner "module:function", CSV it writes, plot "module:function")
EXPERIMENTS: dict[str, tuple[str, str, str]] = {
    "weight_programming": ("analog_train.runner.weight_programming:weight_programming", "weight_programming.csv",
                           "analog_train.plots.weight_programming:plot_weight_programming"),
    "asymmetry": ("analog_train.runner.asymmetry:asymmetry", "asymmetry.csv",
                  "analog_train.plots.asymmetry:plot_asymmetry"),
    "toy_mechanism": ("analog_train.runner.toy_experiment:toy_experiment", "toy_mechanism.csv",
                      "analog_train.plots.toy_mechanism:plot_toy_mechanism"),
}


def resolve_callable(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (imported only when the experiment runs)."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def run_experiment(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run ``cfg.experiment.name`` into ``out_dir``; always leaves ``summary.json``."""
    started = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    runner, csv_name, plotter = EXPERIMENTS[cfg.experiment.name]
    summary: dict[str, Any] = {"experiment": cfg.experiment.name, "status": "completed"}
    try:
        summary.update(resolve_callable(runner)(cfg, out_dir))
        if cfg.plot:
            figures = resolve_callable(plotter)(out_dir / csv_name, out_dir / Path(csv_name).stem)
            summary["figures"] = [str(p) for p in figures]
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
    finally:
        summary.update({"wall_seconds": round(time.time() - started, 3), "versions": package_versions(),
                        "config": OmegaConf.to_container(cfg, resolve=True)})
        write_summary(out_dir, summary)
    return summary

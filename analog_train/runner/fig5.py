"""Paper Fig. 5 (SPEC 7 fc_mnist, lenet_mnist, lstm_warpeace): test error of a network against the
reference offset sigma_r (panels B, C, D) or against the device's number of states (panel A).

A Fig. 5 job is an ordinary training run. Its experiment keys (``conf/experiment/fig5_*.yaml``)
only set the run up: the data subsets and epochs (``experiment.scale=paper``: the YAML's ``paper``
block), the FP baseline's own learning rate (``fp_lr``, where the analog one does not suit the
digital network), and one replica per grid value and seed on the population axis
(``population.device={<vary>: [...]}``, ``population.repeats=seeds``), so that a whole column of the
figure trains as one network of ``P`` replicas in one process. The figure's other axes (the
algorithm, A's symmetry point subtracted or not) are a sweep over jobs, e.g.::

    analog-train -m experiment=fig5_lenet algo=ttv2,cttv2,agad device.subtract_symmetry_point=true,false

:func:`collect` turns the jobs of such sweeps into the tidy ``fig5.csv`` the plot and the report read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from analog_train.config import TRAINING_EXPERIMENTS, validate
from analog_train.runner.weight_programming import experiment_settings

COLUMNS = ["panel", "model", "algo", "sp_subtracted", "n_states", "sigma_r", "repeat", "epochs", "samples_seen",
           "test_error", "test_loss", "test_accuracy", "status"]
ENDURANCE_COLUMNS = ["panel", "model", "algo", "sp_subtracted", "array", "max_pulses_per_sample",
                     "mean_pulses_per_sample"]


def is_training_experiment(cfg: DictConfig) -> bool:
    return bool(cfg.get("experiment")) and cfg.experiment.name in TRAINING_EXPERIMENTS


def training_run(cfg: DictConfig) -> DictConfig:
    """The run config of a Fig. 5 job: its experiment keys turned into data, train and population keys."""
    exp = experiment_settings(cfg)
    run = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    values = list(exp.reference_std if exp.vary == "reference_std" else exp.n_states)
    with open_dict(run):
        run.data.train_subset = exp.train_subset
        run.data.test_subset = exp.test_subset
        run.train.epochs = exp.epochs
        if cfg.algo.name == "fp" and exp.fp_lr is not None:
            run.train.lr = exp.fp_lr
        run.population = {"device": {exp.vary: values}, "repeats": exp.seeds}
        run.experiment = None
    validate(run)
    return run


def _job_rows(job: Path, panel: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The final epoch's rows of one job (one per replica) and its endurance rows."""
    summary = json.loads((job / "summary.json").read_text())
    cfg = summary.get("config") or {}
    algo = cfg.get("algo", {}).get("name")
    device = cfg.get("device", {})
    sp = None if algo == "fp" else bool(device.get("subtract_symmetry_point"))
    common = {"panel": panel, "model": cfg.get("model", {}).get("name"), "algo": algo, "sp_subtracted": sp}
    rows, endurance = [], []
    metrics = job / "metrics.csv"
    if metrics.is_file() and metrics.stat().st_size:
        df = pd.read_csv(metrics)
        if len(df):
            last = df[df.epoch == df.epoch.max()]
            for rec in last.to_dict("records"):
                rows.append({**common,
                             "n_states": rec.get("n_states", device.get("n_states")) if algo != "fp" else None,
                             "sigma_r": rec.get("reference_std", device.get("reference_std")) if algo != "fp" else None,
                             "repeat": rec.get("repeat", 0), "epochs": rec["epoch"],
                             "samples_seen": rec["samples_seen"], "test_error": rec["test_error"],
                             "test_loss": rec["test_loss"], "test_accuracy": 100.0 - rec["test_error"],
                             "status": summary.get("status")})
    for array, stats in (summary.get("endurance") or {}).items():
        endurance.append({**common, "array": array, **stats})
    return rows, endurance


def collect(sweeps: dict[str, list[Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``fig5.csv`` and ``fig5_endurance.csv`` from the job directories of each panel's sweeps.

    ``sweeps`` maps a panel (A, B, C, D) to its sweep directories; a job is a sub-directory with a
    ``summary.json`` (jobs that never started are left out; failed ones have no metrics rows).
    """
    rows, endurance = [], []
    for panel, dirs in sweeps.items():
        for sweep in dirs:
            for job in sorted(p for p in Path(sweep).iterdir() if (p / "summary.json").is_file()):
                job_rows, job_endurance = _job_rows(job, panel)
                rows += job_rows
                endurance += job_endurance
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(endurance, columns=ENDURANCE_COLUMNS)

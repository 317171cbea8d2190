"""``analog-train figures``: every paper figure with the CSV behind it, and ``plot`` to redraw one.

Each figure is ``<out>/<fig>.png``, ``.pdf`` and ``.csv`` (fig5 also ``fig5_endurance.csv``, fig6
``fig6_responses.csv``); the experiment runs themselves (summary.json and the raw CSV) stay in
``<out>/runs/<experiment>/``. Experiments are composed from the same Hydra configs as
``analog-train experiment=<id>``, so a figure here and a run there use identical settings. Fig. 5's
panels are Hydra sweeps (``analog-train -m experiment=fig5_<panel> ...``, the joblib launcher, two
jobs at a time) into ``<out>/runs/fig5_<panel>/``. Run again into the same folder, the command
reuses what completed with the same config (an experiment, a sweep's jobs) and computes the rest,
so an interrupted ``make figures`` finishes where it stopped. Scales:

* reduced (default): the experiment YAMLs as they are, about half an hour on 2 CPU cores in all;
* ``paper_scale``: ``experiment.scale=paper`` (each YAML's ``paper:`` block, e.g. more samples);
* ``smoke``: a few hundred samples on a tiny grid, seconds, for tests (numbers are meaningless).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from omegaconf import DictConfig

from analog_train.config import compose_config as compose_run_config, validate
from analog_train.runner.experiment import EXPERIMENTS, resolve_callable, run_experiment
from analog_train.runner.rundir import earlier_config_change, previous_status

FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6", "table1")
EXPERIMENT_OF = {"fig3": "toy_mechanism", "fig4": "weight_programming", "fig6": "asymmetry"}
SMOKE: dict[str, list[str]] = {
    "weight_programming": ["experiment.samples=300", "experiment.log_every=100", "experiment.seeds=1",
                           "experiment.n_states=[20,80]", "experiment.reference_std=[0.0,0.5]"],
    "asymmetry": ["experiment.samples=300", "experiment.log_every=100", "experiment.seeds=2",
                  "experiment.bounds=[1,8]", "experiment.response_pulses=20"],
    "toy_mechanism": ["experiment.samples=200"],
    "fig5": ["experiment.train_subset=300", "experiment.test_subset=100", "experiment.epochs=1", "experiment.seeds=1"],
    "fig5_lstm": ["experiment.train_subset=20000", "experiment.test_subset=5000"],  # characters: a few LSTM chunks
}
# Fig. 5: panel -> experiment config; each panel is a sweep of the analog algorithms with A's SP
# subtracted and not, and one FP job.
FIG5_PANELS = {"A": "fig5_fc_states", "B": "fig5_fc_sigma", "C": "fig5_lenet", "D": "fig5_lstm"}
FIG5_SWEEPS = {"analog": ["algo=ttv2,cttv2,agad", "device.subtract_symmetry_point=true,false"], "fp": ["algo=fp"]}
# Fig. 2: the paper's soft-bounds device at 40 (Fig. 3) and 20 (Figs. 4-6) states.
FIG2_DEVICES = {"softbounds_40": ["device.n_states=40"], "softbounds_20": ["device.n_states=20"]}


class ExperimentEnded(RuntimeError):
    """An experiment behind a figure did not complete (``status``: interrupted, failed); its files are kept."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The run config ``analog-train <overrides>`` would get (validated), outside a Hydra app."""
    cfg = compose_run_config(overrides)
    validate(cfg)
    return cfg


def _fig2(smoke: bool) -> pd.DataFrame:
    from analog_train.devices.response import pulse_response

    pulses = 20 if smoke else 200
    frames = [pulse_response(compose_config(["device=softbounds", *ov]).device, 3, pulses, pulses, 2 * pulses,
                             preset=name) for name, ov in FIG2_DEVICES.items()]
    return pd.concat(frames, ignore_index=True)


def _plot_fig2(csv: Path | str, stem: Path | str) -> list[Path]:
    from analog_train.plots.device_response import plot_device_response, save_figure

    return save_figure(plot_device_response(csv), stem)


def _table1() -> pd.DataFrame:
    """Table 1 at the paper's assumptions plus its AGAD variant with n_s = 10, l_max = 1."""
    from analog_train.runner.cost import CostAssumptions, cost_table

    default = cost_table(CostAssumptions()).assign(setting="n_s=2, l_avg=5")
    fast = cost_table(CostAssumptions(n_s=10, l_max=1)).assign(setting="n_s=10, l_max=1")
    table = pd.concat([default, fast[fast.algorithm == "AGAD"]], ignore_index=True)
    return table[["algorithm", "setting", *[c for c in default.columns if c not in ("algorithm", "setting")]]]


def plotter(figure: str) -> Callable[[Path | str, Path | str], list[Path]]:
    """The function that draws ``figure`` from its CSV into ``<stem>.png`` and ``<stem>.pdf``."""
    if figure == "fig2":
        return _plot_fig2
    if figure == "table1":
        return resolve_callable("analog_train.plots.table:plot_cost_table")
    if figure == "fig5":
        return resolve_callable("analog_train.plots.fig5:plot_fig5")
    if figure in EXPERIMENT_OF:
        return resolve_callable(EXPERIMENTS[EXPERIMENT_OF[figure]][2])
    raise ValueError(f"unknown figure {figure!r}: one of {', '.join(FIGURES)}")


def make_figures(
    out: Path | str = "figures", paper_scale: bool = False, smoke: bool = False, only: Iterable[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Run what each figure needs and draw it; returns every file written (CSV, PNG, PDF)."""
    selected = list(only or FIGURES)
    unknown = [f for f in selected if f not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}: choose from {', '.join(FIGURES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fig in selected:
        csv = out / f"{fig}.csv"
        if fig == "fig2":
            _fig2(smoke).to_csv(csv, index=False)
        elif fig == "table1":
            _table1().to_csv(csv, index=False)
        elif fig == "fig5":
            _fig5(out, paper_scale, smoke, log)
        else:
            name = EXPERIMENT_OF[fig]
            overrides = [f"experiment={name}", "plot=false"]
            overrides += ["experiment.scale=paper"] if paper_scale else []
            overrides += SMOKE[name] if smoke else []
            run_dir = out / "runs" / name
            cfg = compose_config(overrides)
            if _done(run_dir, cfg):
                log(f"{fig}: experiment {name} completed before with this config -> {run_dir} (reused)")
            else:
                summary = run_experiment(cfg, run_dir)
                if summary["status"] != "completed":
                    raise ExperimentEnded(summary["status"],
                                          f"{fig}: experiment {name}: {summary['reason']} -> {run_dir}")
            source = run_dir / EXPERIMENTS[name][1]
            shutil.copyfile(source, csv)
            for extra in run_dir.glob(f"{source.stem}_*.csv"):  # e.g. asymmetry_responses.csv
                shutil.copyfile(extra, out / f"{fig}{extra.stem[len(source.stem):]}.csv")
        files = [csv, *sorted(out.glob(f"{fig}_*.csv")), *plotter(fig)(csv, out / fig)]
        log("wrote " + ", ".join(str(p) for p in files))
        written += files
    from analog_train.report import write_report

    report = write_report(out)  # from every figure CSV in the folder, this run's and earlier ones
    log(f"wrote {report}")
    return [*written, report]


def _done(run_dir: Path, cfg: DictConfig) -> bool:
    """Whether ``run_dir`` holds a completed run of this config (a figure made before), by the rule a
    sweep job uses (:func:`~analog_train.runner.rundir.earlier_config_change`)."""
    return previous_status(run_dir) == "completed" and earlier_config_change(run_dir, cfg) is None


def _fig5(out: Path, paper_scale: bool, smoke: bool, log: Callable[[str], None]) -> None:
    """Every panel's sweeps (skipping the jobs done before), then ``fig5.csv`` and ``fig5_endurance.csv``."""
    from analog_train.runner.fig5 import collect

    sweeps: dict[str, list[Path]] = {}
    failed = []
    for panel, experiment in FIG5_PANELS.items():
        sweeps[panel] = []
        for kind, axes in FIG5_SWEEPS.items():
            sweep = out / "runs" / experiment / kind
            overrides = [f"experiment={experiment}", *axes, "progress=false", f"hydra.sweep.dir={sweep.resolve()}"]
            overrides += ["experiment.scale=paper"] if paper_scale else []
            overrides += SMOKE["fig5"] + SMOKE.get(experiment, []) if smoke else []
            overrides += ["hydra/launcher=local_parallel"] if kind == "analog" else []
            log(f"fig5 {panel}: analog-train -m {' '.join(overrides)}")
            code = _sweep(overrides)
            sweeps[panel].append(sweep)
            if code == 130:
                raise ExperimentEnded("interrupted", f"fig5: the sweep of panel {panel} was stopped -> {sweep}")
            if code != 0:
                failed.append(f"{panel} ({kind}, exit {code})")
    table, endurance = collect(sweeps)
    table.to_csv(out / "fig5.csv", index=False)
    endurance.to_csv(out / "fig5_endurance.csv", index=False)
    if failed:
        log(f"fig5: jobs failed in {', '.join(failed)}: their rows are missing (the jobs' logs say why)")


def _sweep(overrides: Sequence[str]) -> int:
    """``analog-train -m <overrides>`` in a child process; a SIGTERM or Ctrl-C here reaches it too."""
    child = subprocess.Popen([sys.executable, "-c", "from analog_train.cli import main; main()", "-m", *overrides])
    previous: dict[int, Any] = {}

    def forward(signum: int, frame: Any) -> None:
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, forward)
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""``analog-train figures``: every paper figure with the CSV behind it, and ``plot`` to redraw one.

Each figure is ``<out>/<fig>.png``, ``.pdf`` and ``.csv`` (fig6 also ``fig6_responses.csv``); the
experiment runs themselves (summary.json and the raw CSV) stay in ``<out>/runs/<experiment>/``.
Experiments are composed from the same Hydra configs as ``analog-train experiment=<id>``, so a
figure here and a run there use identical settings. Scales:

* reduced (default): the experiment YAMLs as they are, a few minutes on 2 CPU cores in all;
* ``paper_scale``: ``experiment.scale=paper`` (each YAML's ``paper:`` block, e.g. more samples);
* ``smoke``: a few hundred samples on a tiny grid, seconds, for tests (numbers are meaningless).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Callable

import pandas as pd
from omegaconf import DictConfig

from analog_train.config import compose_config as compose_run_config, validate
from analog_train.runner.experiment import EXPERIMENTS, resolve_callable, run_experiment

FIGURES = ("fig2", "fig3", "fig4", "fig6", "table1")
EXPERIMENT_OF = {"fig3": "toy_mechanism", "fig4": "weight_programming", "fig6": "asymmetry"}
SMOKE: dict[str, list[str]] = {
    "weight_programming": ["experiment.samples=300", "experiment.log_every=100", "experiment.seeds=1",
                           "experiment.n_states=[20,80]", "experiment.reference_std=[0.0,0.5]"],
    "asymmetry": ["experiment.samples=300", "experiment.log_every=100", "experiment.seeds=2",
                  "experiment.bounds=[1,8]", "experiment.response_pulses=20"],
    "toy_mechanism": ["experiment.samples=200"],
}
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
        else:
            name = EXPERIMENT_OF[fig]
            overrides = [f"experiment={name}", "plot=false"]
            overrides += ["experiment.scale=paper"] if paper_scale else []
            overrides += SMOKE[name] if smoke else []
            run_dir = out / "runs" / name
            summary = run_experiment(compose_config(overrides), run_dir)
            if summary["status"] != "completed":
                raise ExperimentEnded(summary["status"], f"{fig}: experiment {name}: {summary['reason']} -> {run_dir}")
            source = run_dir / EXPERIMENTS[name][1]
            shutil.copyfile(source, csv)
            for extra in run_dir.glob(f"{source.stem}_*.csv"):  # e.g. asymmetry_responses.csv
                shutil.copyfile(extra, out / f"{fig}{extra.stem[len(source.stem):]}.csv")
        files = [csv, *sorted(out.glob(f"{fig}_*.csv")), *plotter(fig)(csv, out / fig)]
        log("wrote " + ", ".join(str(p) for p in files))
        written += files
    return written

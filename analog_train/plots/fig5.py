"""Paper Fig. 5: test error (LSTM: test loss) of FC (A: against n_states, B: against sigma_r), LeNet-5 (C)
and the LSTM (D) for TTv2, c-TTv2 and AGAD, from ``fig5.csv`` alone (see :mod:`analog_train.runner.fig5`).

Mean over the seeds (replicas of a grid value) with their standard deviation as error bars; closed
symbols and solid lines: A's symmetry point subtracted; open symbols and dashed lines: not; the FP
baseline of the panel as a red dotted line. A panel without rows says so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analog_train.plots.common import ALGO_COLORS, ALGO_LABELS, OUTSIDE, plt, read_table, save

PANELS = {  # panel: (title, x column, x label, metric, y label)
    "A": ("A: FC on MNIST, sigma_r = 0.5", "n_states", "number of states n_states", "test_error", "test error [%]"),
    "B": ("B: FC on MNIST, 20 states", "sigma_r", r"reference offset $\sigma_r$ [norm. conductance]", "test_error",
          "test error [%]"),
    "C": ("C: LeNet-5 on MNIST, 20 states", "sigma_r", r"reference offset $\sigma_r$ [norm. conductance]",
          "test_error", "test error [%]"),
    "D": ("D: LSTM on War and Peace, 20 states", "sigma_r", r"reference offset $\sigma_r$ [norm. conductance]",
          "test_loss", "test loss [nats / character]"),
}
ALGOS = ("ttv2", "cttv2", "agad")
COLUMNS = ("panel", "algo", "sp_subtracted", "n_states", "sigma_r", "test_error", "test_loss")  # what the plot reads


def _panel(ax: plt.Axes, df: pd.DataFrame, panel: str) -> None:
    title, x, x_label, metric, y_label = PANELS[panel]
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    rows = df[df.panel == panel]
    if rows.empty:
        ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="gray")
        return
    for algo in ALGOS:
        for sp, style, face in ((True, "-", None), (False, "--", "none")):
            part = rows[(rows.algo == algo) & (rows.sp_subtracted == sp)]
            if part.empty:
                continue
            stats = part.groupby(x)[metric].agg(["mean", "std"]).reset_index().sort_values(x)
            ax.errorbar(stats[x], stats["mean"], yerr=stats["std"].fillna(0.0), linestyle=style, marker="o",
                        color=ALGO_COLORS[algo], markerfacecolor=face, capsize=3,
                        label=f"{ALGO_LABELS[algo]}, SP {'subtracted' if sp else 'not subtracted'}")
    fp = rows[rows.algo == "fp"][metric]
    if len(fp):
        ax.axhline(fp.mean(), color=ALGO_COLORS["fp"], linestyle=":", label=ALGO_LABELS["fp"])
    if x == "n_states":  # log axis, ticks at the grid's own values
        ax.set_xscale("log", base=2)
        states = sorted(rows[x].dropna().unique())
        ax.set_xticks(states, [f"{s:g}" for s in states])
        ax.minorticks_off()


def plot_fig5(csv: Path | str, stem: Path | str) -> list[Path]:
    """The four panels of Fig. 5 from ``fig5.csv`` into ``<stem>.png`` and ``.pdf``."""
    df = read_table(csv, COLUMNS, ("test_error", "test_loss"))
    df["sp_subtracted"] = df["sp_subtracted"].map({True: True, False: False, "True": True, "False": False})
    for column in ("n_states", "sigma_r"):
        df[column] = pd.to_numeric(df[column], errors="coerce")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, panel in zip(axes.flat, PANELS):
        _panel(ax, df, panel)
    handles, labels = [], []
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, fontsize=8, **OUTSIDE)
    fig.tight_layout()
    return save(fig, stem)

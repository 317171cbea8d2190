"""Paper Fig. 4: weight-programming error heat maps (n_states x sigma_r), one panel per algorithm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analog_train.plots.common import ALGO_LABELS, plt, read_table, save

COLUMNS = ("algo", "n_states", "sigma_r", "samples", "eps_w")


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean eps_w in % at each algorithm's last checkpoint, indexed (algo, n_states, sigma_r)."""
    last = df[df.samples == df.groupby("algo").samples.transform("max")]
    return 100.0 * last.groupby(["algo", "n_states", "sigma_r"], sort=False).eps_w.mean()


def plot_weight_programming(csv: Path | str, stem: Path | str) -> list[Path]:
    """Heat map per algorithm of ``eps_w`` (%, mean over seeds) from ``weight_programming.csv``."""
    table = final_table(read_table(csv, COLUMNS, numeric=COLUMNS[1:]))
    algos = list(dict.fromkeys(table.index.get_level_values("algo")))
    states = sorted(set(table.index.get_level_values("n_states")))
    sigmas = sorted(set(table.index.get_level_values("sigma_r")))
    vmax = float(table.max())
    fig, axes = plt.subplots(1, len(algos), figsize=(3.2 * len(algos) + 0.8, 3.2), squeeze=False, sharey=True)
    for ax, algo in zip(axes[0], algos):
        grid = np.array([[table.get((algo, n, s), np.nan) for s in sigmas] for n in states])
        im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        for i in range(len(states)):
            for j in range(len(sigmas)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.6 * vmax else "black")
        ax.set_xticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
        ax.set_yticks(range(len(states)), [str(n) for n in states])
        ax.set_xlabel(r"reference offset $\sigma_r$ [weight]")
        ax.set_title(ALGO_LABELS.get(algo, algo))
    axes[0, 0].set_ylabel("number of states")
    fig.colorbar(im, ax=axes[0].tolist(), label=r"$\epsilon_w$ [%] = 100 rms$(W - \hat W)$")
    return save(fig, stem)

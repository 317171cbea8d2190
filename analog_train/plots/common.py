"""Shared plotting helpers: a headless backend and one call that writes PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

ALGO_LABELS = {"sgd": "in-memory SGD", "ttv2": "TTv2", "cttv2": "c-TTv2", "agad": "AGAD", "fp": "FP SGD"}
ALGO_COLORS = {"sgd": "tab:gray", "ttv2": "tab:blue", "cttv2": "tab:orange", "agad": "tab:green"}
WEIGHT = "weight [norm. conductance]"  # the axis label of weights: the mean device spans about [-1, 1]
OUTSIDE = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # a legend beside its axes, off the data


def save(fig: Figure, stem: Path | str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``, close the figure, return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths

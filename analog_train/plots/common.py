"""Shared plotting helpers: a headless backend, checked CSV input and one call that writes PNG and PDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")  # figures are files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

ALGO_LABELS = {"sgd": "in-memory SGD", "ttv2": "TTv2", "cttv2": "c-TTv2", "cttv2_regular": "c-TTv2 (regular choppers)",
               "agad": "AGAD", "fp": "FP SGD"}
ALGO_COLORS = {"sgd": "tab:gray", "ttv2": "tab:blue", "cttv2": "tab:orange", "cttv2_regular": "tab:brown",
               "agad": "tab:green", "fp": "tab:red"}
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


class PlotInputError(ValueError):
    """A CSV a figure cannot be drawn from; the message (one line) names the file and what is wrong."""


def read_table(csv: Path | str, columns: Sequence[str] = (), numeric: Sequence[str] = ()) -> pd.DataFrame:
    """The CSV ``csv`` with at least one row and ``columns``, of which ``numeric`` hold numbers only.

    Raises :class:`PlotInputError` for an empty, malformed or wrong file instead of failing somewhere
    inside the plot.
    """
    try:
        df = pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        raise PlotInputError(f"{csv}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PlotInputError(f"{csv}: not a readable CSV file ({reason})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PlotInputError(f"{csv}: not the CSV of this figure: it lacks column(s) {', '.join(missing)} "
                             f"(it has {', '.join(map(str, df.columns))})")
    if df.empty:
        raise PlotInputError(f"{csv}: no rows")
    for column in numeric:
        values = pd.to_numeric(df[column], errors="coerce")
        if (values.isna() & df[column].notna()).any():
            raise PlotInputError(f"{csv}: column {column} holds values that are not numbers")
        df[column] = values
    return df

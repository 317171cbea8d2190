"""Paper Table 1 rendered as a figure, from the CSV of :func:`analog_train.runner.cost.cost_table`."""

from __future__ import annotations

from pathlib import Path

from analog_train.plots.common import plt, read_table, save


def _cell(column: str, value: object) -> str:
    """Times (``*_ns``) with the paper's one decimal, whole counts as integers."""
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    return f"{number:,.0f}" if number.is_integer() and not column.endswith("_ns") else f"{number:,.1f}"


def plot_cost_table(csv: Path | str, stem: Path | str) -> list[Path]:
    """One table row per CSV row; every column of the CSV is shown under its own name."""
    df = read_table(csv, ("algorithm",))
    cells = [[_cell(c, v) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(1.5 * len(df.columns), 0.35 * (len(df) + 2)))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=list(df.columns), loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(df.columns))))
    ax.set_title("Update cost per input sample (paper Table 1)", fontsize=9)
    return save(fig, stem)

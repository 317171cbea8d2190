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


UNITS = {"ns": "ns", "bytes": "bytes", "bits": "bits"}


def header(column: str) -> str:
    """``time_ns`` -> ``time\n[ns]``, ``fp_ops`` -> ``FP ops``: a CSV column as a readable table header."""
    words = column.split("_")
    unit = UNITS.get(words[-1]) if len(words) > 1 else None
    text = " ".join("FP" if w == "fp" else w for w in (words[:-1] if unit else words))
    return f"{text}\n[{unit}]" if unit else text


def plot_cost_table(csv: Path | str, stem: Path | str) -> list[Path]:
    """One table row per CSV row; every column of the CSV, under a readable header with its unit."""
    df = read_table(csv, ("algorithm",))
    cells = [[_cell(c, v) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(1.5 * len(df.columns), 0.35 * (len(df) + 3)))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=[header(c) for c in df.columns], loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(df.columns))))
    for (row, _), cell in table.get_celld().items():
        if row == 0:  # two-line headers (name, unit)
            cell.set_height(2 * cell.get_height())
    ax.set_title("Update cost per input sample (paper Table 1)", fontsize=9)
    return save(fig, stem)

"""Paper Fig. 2 (device response) and the device-fit check, drawn from their CSV files only.

``device_response`` CSV: preset, device_id, phase, pulse_index, direction, weight, step_up,
step_down, sp (see ``analog_train.devices.response``). Fit CSV: device_id, direction, weight,
step, model, used (see ``analog_train.devices.fit``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analog_train.plots.common import OUTSIDE, WEIGHT, read_table


RESPONSE_COLUMNS = ("preset", "device_id", "phase", "pulse_index", "weight", "step_up", "step_down", "sp")
FIT_COLUMNS = ("device_id", "direction", "weight", "step", "model", "used")


def _frame(data: pd.DataFrame | str | Path, columns: tuple[str, ...], numeric: tuple[str, ...]) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else read_table(data, columns, numeric)


def plot_device_response(data: pd.DataFrame | str | Path) -> Figure:
    """One row per preset: (a) N up then N down pulses, (b) alternating pulses with each device's
    SP dashed, (c) noise-free up/down step size vs weight with the SP dotted."""
    df = _frame(data, RESPONSE_COLUMNS, RESPONSE_COLUMNS[3:])
    presets = list(dict.fromkeys(df["preset"]))
    fig = Figure(figsize=(12, 3.2 * len(presets)), layout="constrained")
    axes = fig.subplots(len(presets), 3, squeeze=False)
    for row, preset in zip(axes, presets):
        d = df[df["preset"] == preset]
        for k, (dev, g) in enumerate(d.groupby("device_id", sort=True)):
            color = f"C{k % 10}"
            ramp = g[g["phase"] != "alternating"]
            alt = g[g["phase"] == "alternating"]
            sp = float(g["sp"].iloc[0])
            row[0].plot(ramp["pulse_index"], ramp["weight"], color=color, lw=0.8, label=f"device {dev}")
            row[1].plot(alt["pulse_index"], alt["weight"], color=color, lw=0.6)
            row[1].axhline(sp, color=color, ls="--", lw=1.0)
            curve = ramp.sort_values("weight")
            row[2].plot(curve["weight"], curve["step_up"], color=color, lw=1.0)
            row[2].plot(curve["weight"], curve["step_down"], color=color, lw=1.0, ls="--")
            row[2].axvline(sp, color=color, ls=":", lw=1.0)
        row[0].set(title=f"{preset}: (a) up, then down pulses", xlabel="pulse number", ylabel=WEIGHT)
        row[1].set(title="(b) alternating up/down, SP dashed", xlabel="pulse number", ylabel=WEIGHT)
        row[2].set(title="(c) |step|: up solid, down dashed, SP dotted", xlabel=WEIGHT, ylabel="|step| [weight]")
        row[2].legend(*row[0].get_legend_handles_labels(), fontsize="small", **OUTSIDE)
    return fig


def plot_fit(data: pd.DataFrame | str | Path) -> Figure:
    """Measured step sizes vs weight (grey: left out as possibly clipped) and the fitted law per device."""
    df = _frame(data, FIT_COLUMNS, ("weight", "step", "model"))
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, direction, name in ((axes[0], 1, "up"), (axes[1], -1, "down")):
        d = df[df["direction"] == direction]
        ax.scatter(d.loc[~d["used"], "weight"], d.loc[~d["used"], "step"], s=3, color="0.7", label="left out")
        for k, (dev, g) in enumerate(d.groupby("device_id", sort=True)):
            color = f"C{k % 10}"
            used = g[g["used"]]
            ax.scatter(used["weight"], used["step"], s=3, color=color, alpha=0.4)
            curve = g.sort_values("weight")
            ax.plot(curve["weight"], curve["model"], color=color, lw=1.2)
        ax.set(title=f"{name} pulses: data (dots) vs fit (lines)", xlabel=f"{WEIGHT} before the pulse",
               ylabel="step size [weight]")
    axes[1].legend(fontsize="small", **OUTSIDE)
    return fig


def save_figure(fig: Figure, path: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats``; returns the files written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(f".{f}") for f in formats]
    for p in out:
        fig.savefig(p, dpi=150, bbox_inches="tight")  # nothing cut off: titles, labels and outside legends
    return out

"""Paper Fig. 6: (a) example responses per bound setting, (b) eps_w vs asymmetry per algorithm."""

from __future__ import annotations

from pathlib import Path

from analog_train.plots.common import ALGO_COLORS, ALGO_LABELS, OUTSIDE, WEIGHT, plt, read_table, save

COLUMNS = ("algo", "w_max", "samples", "eps_w")
RESPONSE_COLUMNS = ("w_max", "pulse", "weight")


def responses_path(csv: Path | str) -> Path:
    """The example-response CSV written next to ``asymmetry.csv`` (``<stem>_responses.csv``)."""
    csv = Path(csv)
    return csv.with_name(f"{csv.stem}_responses.csv")


def plot_asymmetry(csv: Path | str, stem: Path | str) -> list[Path]:
    """Two panels from ``asymmetry.csv`` and its ``_responses.csv`` sibling (panel a is left out if absent)."""
    df = read_table(csv, COLUMNS, numeric=COLUMNS[1:])
    resp_file = responses_path(csv)
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    if resp_file.exists():
        resp = read_table(resp_file, RESPONSE_COLUMNS, numeric=RESPONSE_COLUMNS)
        for bound, trace in resp.groupby("w_max"):
            ax_a.plot(trace.pulse, trace.weight, lw=1, label=f"$w_{{max}}$ = {bound:g}")
        ax_a.set_xlabel("pulse number (up, then down)")
        ax_a.set_ylabel(WEIGHT)
        ax_a.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=2)
    ax_a.set_title("(a) device response")
    last = df[df.samples == df.groupby("algo").samples.transform("max")]
    stats = last.groupby(["algo", "w_max"], sort=False).eps_w.agg(["mean", "sem", "count"]).reset_index()
    for algo, s in stats.groupby("algo", sort=False):
        err = 100 * s["sem"].fillna(0.0)
        ax_b.errorbar(s.w_max, 100 * s["mean"], yerr=err, marker="o", capsize=3,
                      color=ALGO_COLORS.get(algo), label=ALGO_LABELS.get(algo, algo))
    ax_b.set_xscale("log", base=2)
    ax_b.set_xlabel(r"bound $w_{max} = -w_{min}$ [weight] (more symmetric $\rightarrow$)")
    ax_b.set_ylabel(r"$\epsilon_w$ [%] (mean $\pm$ s.e.m.)")
    ax_b.set_title("(b) weight-programming error")
    ax_b.legend(fontsize=8, **OUTSIDE)
    return save(fig, stem)

"""Paper Fig. 3: traces of element (0, 0) for TTv2, c-TTv2 and AGAD without and with a reference offset.

CSV columns (one row per algorithm, offset and sample; see ``analog_train.runner.toy_mechanism``):
algo, reference_offset, sample, A, H, W, p, p_ref, chopper, read (column 0 was read after this
sample), flip (its chopper flipped at that read). p and p_ref are empty except for AGAD.
"""

from __future__ import annotations

from pathlib import Path


from analog_train.plots.common import ALGO_LABELS, OUTSIDE, plt, read_table, save

TRACES = {"A": ("A", "tab:blue"), "H": ("H", "tab:green"), "W": ("W", "tab:orange"),
          "p": ("p", "tab:red"), "p_ref": (r"$p_{ref}$", "tab:purple")}
COLUMNS = ("algo", "reference_offset", "sample", "H")


def plot_toy_mechanism(csv: Path | str, stem: Path | str) -> list[Path]:
    """Rows: reference offsets; columns: algorithms. Dots mark reads, grey dashes chopper flips."""
    df = read_table(csv, COLUMNS, numeric=COLUMNS[1:])
    algos = list(dict.fromkeys(df.algo))
    offsets = list(dict.fromkeys(df.reference_offset))
    fig, axes = plt.subplots(len(offsets), len(algos), figsize=(4.2 * len(algos), 2.9 * len(offsets)),
                             squeeze=False, sharex=True, sharey=True)
    for r, offset in enumerate(offsets):
        for c, algo in enumerate(algos):
            ax = axes[r, c]
            d = df[(df.algo == algo) & (df.reference_offset == offset)].sort_values("sample")
            for key, (label, color) in TRACES.items():
                if key in d and d[key].notna().any():
                    ax.plot(d["sample"], d[key], color=color, lw=0.9, label=label)
            if "read" in d:
                reads = d[d.read.astype(bool)]
                ax.plot(reads["sample"], reads["H"], ".", color="tab:green", ms=2.5)
            for s in d["sample"][d.flip.astype(bool)] if "flip" in d else []:
                ax.axvline(s, color="grey", ls="--", lw=0.5, alpha=0.6)
            for level in (-1.0, 1.0):
                ax.axhline(level, color="black", ls=":", lw=0.6)
            ax.set_title(f"{ALGO_LABELS.get(algo, algo)}, reference offset {offset:g}", fontsize=9)
            if r == len(offsets) - 1:
                ax.set_xlabel("sample")
        axes[r, 0].set_ylabel("element (0, 0) [weight; H: thresholds]")
    axes[0, -1].legend(fontsize=7, **OUTSIDE)
    return save(fig, stem)

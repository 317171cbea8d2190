"""``analog-train report``: which of the paper's claims hold, measured from the CSVs of a figures folder.

``REPORT.md`` has one row per claim of Rasch et al. (Nat. Commun. 15:7133, 2024) that the
experiments can test: the claim in short, the numbers measured, the settings they come from, the
criterion and the verdict (holds / does not hold / not measured). Every measured number is
computed here from the figure CSVs; settings come from the CSVs and from the runs' ``summary.json``.
The only numbers written in this module are the paper's own (they are the claims) and the
criteria's constants, which no result may move:

* two settings differ (a rise, a fall, one algorithm beating another) when their means differ by
  more than ``SPREADS`` seed standard deviations ``s`` pooled over the two settings (an effect size,
  d > 2); "flat" means the means along an axis span at most ``SPREADS`` seed stds pooled over every
  setting on it. Measured in seed stds (not standard errors), a rise and flatness are complements:
  "flat" reads "within the seed-to-seed spread";
* a bound taken from the paper ("> 25 %") holds when the mean clears it by ``SPREADS * s``; "about
  X %" when the mean lies within the paper's precision (1 percentage point) plus ``SPREADS * s``;
* Fig. 3 traces a single element once, so there are no seeds: W moves in single transfer pulses,
  and a drift counts when the net pulse count beats a random walk (sign test, ``SPREADS`` sigma);
* a claim whose CSV, columns or rows are missing, or whose data has one seed (no spread), is
  "not measured", never an error.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"
SPREADS = 2.0  # a difference counts when it exceeds this many pooled seed standard deviations
PAPER_PRECISION = 1.0  # the paper quotes eps_w in whole percent ("5 %", "9 %")
PAIR_S = "s: seed std pooled over the two settings compared"
AXIS_S = "s: seed std pooled over every setting along the axis"
TAIL = 0.1  # Fig. 3: the final W is the mean over this last fraction of the samples
REPORT_NAME = "REPORT.md"


class NotMeasured(Exception):
    """The data a claim needs is not in the figures folder (the message says what is missing)."""


@dataclass(frozen=True)
class Row:
    """One claim of the paper with what the figures folder says about it."""

    section: str
    claim: str
    measured: str
    settings: str
    criterion: str
    verdict: str


@dataclass(frozen=True)
class Outcome:
    """What evaluating one claim on the data gives."""

    holds: bool
    measured: str
    settings: str


def _claim(section: str, claim: str, criterion: str, evaluate: Callable[[], Outcome]) -> Row:
    try:
        outcome = evaluate()
    except NotMeasured as why:
        return Row(section, claim, str(why), "", criterion, NOT_MEASURED)
    except (ValueError, TypeError) as err:  # a value that is not a number where one belongs
        return Row(section, claim, f"unusable data: {err}", "", criterion, NOT_MEASURED)
    return Row(section, claim, outcome.measured, outcome.settings, criterion, HOLDS if outcome.holds else FAILS)


# --- the figures folder ---------------------------------------------------------------------------------


class Table:
    """One CSV of the figures folder, read on first use; a claim that touches a missing one is not measured."""

    def __init__(self, folder: Path, name: str, columns: Sequence[str]) -> None:
        self.folder, self.name, self.columns = folder, name, tuple(columns)
        self._frame: pd.DataFrame | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            if not self.path.is_file():
                raise NotMeasured(f"{self.name} not found")
            try:
                frame = pd.read_csv(self.path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
                raise NotMeasured(f"{self.name} unreadable ({type(err).__name__})") from None
            missing = [c for c in self.columns if c not in frame.columns]
            if missing:
                raise NotMeasured(f"{self.name} lacks column(s) {', '.join(missing)}")
            self._frame = frame
        return self._frame

    @cached_property
    def run_settings(self) -> str:
        """The run behind this CSV: the ``summary.json`` under ``runs/`` whose CSV has the same bytes."""
        data = self.path.read_bytes()
        for summary_path in sorted(self.folder.glob("runs/*/summary.json")):
            try:
                summary = json.loads(summary_path.read_text())
                source = summary_path.parent / Path(summary["csv"]).name
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if source.is_file() and source.read_bytes() == data:
                experiment = (summary.get("config") or {}).get("experiment") or {}
                keys = [k for k in ("scale", "lr") if k in experiment]
                parts = [f"{k} {experiment[k]}" for k in keys]
                return ", ".join(parts + [f"run: {summary_path.parent.relative_to(self.folder)}"])
        return ""


def _rows_where(df: pd.DataFrame, note: str = "", **equal: object) -> pd.DataFrame:
    """The rows whose columns equal ``equal`` (numbers compared as numbers); none: not measured (``note`` says
    which rows were searched, if not all)."""
    mask = pd.Series(True, index=df.index)
    for column, value in equal.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            mask &= np.isclose(pd.to_numeric(df[column], errors="coerce"), value)
        else:
            mask &= df[column].astype(str) == str(value)
    rows = df[mask]
    if rows.empty:
        raise NotMeasured("no rows with " + ", ".join(f"{k} {v}" for k, v in equal.items())
                          + (f" ({note})" if note else ""))
    return rows


# --- statistics -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation (ddof 1) and count of the replicas of one setting."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        array = np.asarray(list(values), dtype=float)
        return cls(float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else math.nan, int(array.size))


def pooled_std(spreads: Iterable[Spread]) -> float:
    """The seed std pooled over settings, sum((n-1) s^2) / sum(n-1); one seed everywhere: not measured."""
    spreads = list(spreads)
    dof = sum(s.n - 1 for s in spreads)
    if dof == 0:
        raise NotMeasured("one seed per setting: no seed spread to judge by")
    return math.sqrt(sum((s.n - 1) * s.std**2 for s in spreads if s.n > 1) / dof)


def spreads_along(df: pd.DataFrame, axis: str, value: str) -> dict[float, Spread]:
    """The replicas' spread of ``value`` at each value of ``axis``, in ascending order."""
    grouped = df.groupby(pd.to_numeric(df[axis]), sort=True)[value]
    return {float(k): Spread.of(v) for k, v in grouped}


@dataclass(frozen=True)
class Unit:
    """How a metric is shown: the CSV column times ``scale``, in ``unit`` with ``digits`` decimals."""

    column: str
    scale: float
    unit: str
    digits: int

    def __call__(self, x: float) -> str:
        return f"{x:.{self.digits}f}"

    def spread(self, s: Spread) -> str:
        return f"{self(s.mean)} ± {self(s.std)}" if s.n > 1 else self(s.mean)


EPS_W = Unit("eps_w", 100.0, "%", 1)


def _along(spreads: dict[float, Spread], unit: Unit, label: str) -> str:
    return "; ".join(f"{label} {k:g}: {unit.spread(s)}" for k, s in spreads.items()) + f" {unit.unit}"


def _rise(spreads: dict[float, Spread]) -> float:
    """Mean at the largest axis value minus mean at the smallest."""
    return spreads[max(spreads)].mean - spreads[min(spreads)].mean


def _ends(spreads: dict[float, Spread]) -> list[Spread]:
    """The settings at the smallest and the largest axis value."""
    return [spreads[min(spreads)], spreads[max(spreads)]]


def _versus(differences: dict[float, tuple[float, float]], unit: Unit, ok: Callable[[float, float], bool]) -> str:
    """Differences per axis value beside their s (pooled over the two settings); ✗ where ``ok(d, s)`` fails."""
    return ", ".join(f"{k:g}: {d:+.{unit.digits}f} (s = {unit(s)}){'' if ok(d, s) else ' ✗'}"
                     for k, (d, s) in differences.items())


def _above(d: float, s: float) -> bool:
    return d > SPREADS * s


def _within(d: float, s: float) -> bool:
    return d <= SPREADS * s


def _span(spreads: dict[float, Spread]) -> float:
    means = [v.mean for v in spreads.values()]
    return max(means) - min(means)


def _final(df: pd.DataFrame, keys: Sequence[str], unit: Unit) -> pd.DataFrame:
    """Each replica's last checkpoint, with its metric scaled to ``unit`` in column ``value``."""
    last = df.sort_values("samples").groupby(list(keys), sort=False).tail(1)
    return last.assign(value=pd.to_numeric(last[unit.column]) * unit.scale)


def _seeds(df: pd.DataFrame, keys: Sequence[str]) -> str:
    """How many replicas each setting has (``keys`` without the seed column)."""
    counts = df.groupby([k for k in keys if k != "seed"]).size()
    low, high = int(counts.min()), int(counts.max())
    return f"{low} seeds" if low == high else f"{low}-{high} seeds"


def _counts(values: Iterable[object]) -> str:
    unique = sorted({int(v) for v in values})
    return "/".join(str(v) for v in unique)


# --- Fig. 3 ---------------------------------------------------------------------------------------------

FIG3 = "Fig. 3: toy mechanism, constant negative gradient"
FIG3_COLUMNS = ("algo", "reference_offset", "sample", "W")


@dataclass(frozen=True)
class Drift:
    """W(0, 0) of one trace: its start, final value and the transfer pulses that moved it."""

    start: float
    final: float
    down: int
    up: int
    samples: int

    @property
    def pulses(self) -> int:
        return self.down + self.up

    @property
    def net_down(self) -> int:
        return self.down - self.up

    @property
    def learns(self) -> bool:
        """W decreased, by more net downward pulses than a random walk of as many pulses reaches."""
        return self.final < self.start and self.net_down > SPREADS * math.sqrt(self.pulses)

    def __str__(self) -> str:
        return (f"W {self.start:+.3f} -> {self.final:+.3f}; pulses {self.down} down / {self.up} up "
                f"(net {self.net_down:+d}, {SPREADS:g}√n = {SPREADS * math.sqrt(self.pulses):.1f})")


def _drift(table: Table, algo: str, offset: float) -> Drift:
    trace = _rows_where(table.frame, algo=algo, reference_offset=offset).sort_values("sample")
    w = pd.to_numeric(trace["W"]).to_numpy(dtype=float)
    steps = np.diff(w)
    tail = max(1, int(round(TAIL * w.size)))
    return Drift(float(w[0]), float(w[-tail:].mean()), int((steps < 0).sum()), int((steps > 0).sum()), w.size)


def _offset(table: Table) -> float:
    offsets = pd.to_numeric(table.frame["reference_offset"]).unique()
    nonzero = [float(o) for o in offsets if o != 0]
    if not nonzero:
        raise NotMeasured("fig3.csv has no nonzero reference offset")
    return max(nonzero, key=abs)


def _fig3_settings(table: Table, *drifts: Drift) -> str:
    samples = _counts(d.samples for d in drifts)
    return ", ".join(filter(None, [f"element (0, 0), {samples} samples, 1 trace each", table.run_settings]))


def fig3_rows(folder: Path) -> list[Row]:
    table = Table(folder, "fig3.csv", FIG3_COLUMNS)
    learns = (f"learns: final W (mean of the last {TAIL:.0%} of samples) below the start and net downward "
              f"W pulses > {SPREADS:g}√(pulses) (sign test)")

    def learns_at(algo: str, with_offset: bool, expect: bool) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            offset = _offset(table) if with_offset else 0.0
            drift = _drift(table, algo, offset)
            return Outcome(drift.learns == expect, f"offset {offset:g}: {drift}", _fig3_settings(table, drift))

        return evaluate

    def compare(algo: str, expect_slower: bool) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            offset = _offset(table)
            clean, shifted = _drift(table, algo, 0.0), _drift(table, algo, offset)
            gap = clean.net_down - shifted.net_down
            bound = SPREADS * math.sqrt(clean.pulses + shifted.pulses)
            holds = gap > bound if expect_slower else clean.learns and shifted.learns and abs(gap) <= bound
            measured = (f"offset 0: {clean}; offset {offset:g}: {shifted}; net pulses lost to the offset "
                        f"{gap:+d} ({SPREADS:g}√(n0+n1) = {bound:.1f})")
            return Outcome(holds, measured, _fig3_settings(table, clean, shifted))

        return evaluate

    return [
        _claim(FIG3, "TTv2 learns without a reference offset (W decreases)", learns, learns_at("ttv2", False, True)),
        _claim(FIG3, "TTv2 breaks down with offset -0.8: h never reaches threshold, W stalls or moves the wrong way",
               f"the negation of learns ({learns})", learns_at("ttv2", True, False)),
        _claim(FIG3, "c-TTv2 still learns with the offset", learns, learns_at("cttv2", True, True)),
        _claim(FIG3, "c-TTv2 is slowed by the offset",
               f"net downward W pulses without offset − with offset > {SPREADS:g}√(pulses of both traces)",
               compare("cttv2", True)),
        _claim(FIG3, "AGAD is unaffected by the offset: it learns in both cases",
               f"learns with and without offset, and the net downward pulses differ by ≤ {SPREADS:g}√(pulses of "
               "both traces)", compare("agad", False)),
    ]


# --- Fig. 4 ---------------------------------------------------------------------------------------------

FIG4 = "Fig. 4: weight-programming error eps_w"
FIG4_KEYS = ("algo", "n_states", "sigma_r", "seed")
FIG4_COLUMNS = (*FIG4_KEYS, "samples", "eps_w")
ANCHOR_STATES = 20


def _cttv2_labels(table: Table) -> list[str]:
    """The c-TTv2 variants in the CSV (``cttv2``: random choppers; ``cttv2_regular``); just ``cttv2`` if none."""
    try:
        labels = sorted({str(a) for a in table.frame["algo"] if str(a).startswith("cttv2")})
    except NotMeasured:
        labels = []
    return labels or ["cttv2"]


def _grid_settings(table: Table, final: pd.DataFrame, keys: Sequence[str]) -> str:
    parts = [f"{_counts(final['samples'])} samples", _seeds(final, keys), table.run_settings]
    return ", ".join(filter(None, parts))


def fig4_rows(folder: Path) -> list[Row]:
    table = Table(folder, "fig4.csv", FIG4_COLUMNS)

    def final() -> pd.DataFrame:
        return _final(table.frame, FIG4_KEYS, EPS_W)

    def cell(algo: str, n_states: int, sigma_r: float) -> tuple[Spread, pd.DataFrame]:
        rows = _rows_where(final(), algo=algo, n_states=n_states, sigma_r=sigma_r)
        spread = Spread.of(rows["value"])
        pooled_std([spread])  # one seed: not measured
        return spread, rows

    def above(algo: str, bound: float) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            spread, rows = cell(algo, ANCHOR_STATES, 0.0)
            return Outcome(spread.mean - SPREADS * spread.std > bound,
                           f"{algo} at {ANCHOR_STATES} states, sigma_r 0: {EPS_W.spread(spread)} %",
                           _grid_settings(table, rows, FIG4_KEYS))

        return evaluate

    def about(algo: str, sigma_r: float, paper: float) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            spread, rows = cell(algo, ANCHOR_STATES, sigma_r)
            return Outcome(abs(spread.mean - paper) <= PAPER_PRECISION + SPREADS * spread.std,
                           f"{algo} at {ANCHOR_STATES} states, sigma_r {sigma_r:g}: {EPS_W.spread(spread)} % "
                           f"(paper {paper:g} %)", _grid_settings(table, rows, FIG4_KEYS))

        return evaluate

    def degrades(algo: str, from_sigma: float) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            rows = _rows_where(final(), algo=algo, n_states=ANCHOR_STATES)
            spreads = spreads_along(rows, "sigma_r", "value")
            if 0.0 not in spreads or not any(k >= from_sigma for k in spreads):
                raise NotMeasured(f"fig4.csv lacks {algo} at sigma_r 0 or >= {from_sigma:g}")
            base = spreads[0.0]
            rises = {k: (v.mean - base.mean, pooled_std([base, v])) for k, v in spreads.items() if k >= from_sigma}
            measured = f"{_along(spreads, EPS_W, 'sigma_r')}; rise over sigma_r 0: {_versus(rises, EPS_W, _above)}"
            return Outcome(all(_above(r, s) for r, s in rises.values()), measured,
                           f"{ANCHOR_STATES} states, " + _grid_settings(table, rows, FIG4_KEYS))

        return evaluate

    def flat(algo: str, states: Callable[[Sequence[int]], Sequence[int]]) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            rows = _rows_where(final(), algo=algo)
            chosen = states(sorted({int(n) for n in rows["n_states"]}))
            if not chosen:
                raise NotMeasured(f"fig4.csv has {algo} at none of the n_states this claim is about")
            measured, holds = [], True
            for n in chosen:
                spreads = spreads_along(rows[rows["n_states"] == n], "sigma_r", "value")
                s = pooled_std(spreads.values())
                means = [v.mean for v in spreads.values()]
                span = _span(spreads)
                holds &= _within(span, s)
                measured.append(f"{n} states: {EPS_W(min(means))}-{EPS_W(max(means))} % over sigma_r "
                                f"{min(spreads):g}-{max(spreads):g} (span {EPS_W(span)}, s = {EPS_W(s)})"
                                + ("" if _within(span, s) else " ✗"))
            return Outcome(holds, "; ".join(measured), _grid_settings(table, rows, FIG4_KEYS))

        return evaluate

    few_states = (10, ANCHOR_STATES)
    flat_rule = f"per n_states: the means over sigma_r span ≤ {SPREADS:g} s ({AXIS_S})"
    rows = [
        _claim(FIG4, f"at {ANCHOR_STATES} states and sigma_r = 0, in-memory SGD has eps_w > 25 %",
               f"mean − {SPREADS:g} × seed std > 25 %", above("sgd", 25.0)),
        _claim(FIG4, f"at {ANCHOR_STATES} states and sigma_r = 0, TTv2 has eps_w ≈ 5 %",
               f"|mean − 5 %| ≤ {PAPER_PRECISION:g} point + {SPREADS:g} × seed std", about("ttv2", 0.0, 5.0)),
        _claim(FIG4, f"TTv2 degrades once sigma_r ≥ 0.1 ({ANCHOR_STATES} states)",
               f"at every sigma_r ≥ 0.1: mean − mean at sigma_r 0 > {SPREADS:g} s ({PAIR_S})",
               degrades("ttv2", 0.1)),
        _claim(FIG4, f"TTv2 reaches eps_w ≈ 9 % at sigma_r = 0.1 ({ANCHOR_STATES} states)",
               f"|mean − 9 %| ≤ {PAPER_PRECISION:g} point + {SPREADS:g} × seed std", about("ttv2", 0.1, 9.0)),
    ]
    for label in _cttv2_labels(table):
        rows.append(_claim(FIG4, f"c-TTv2 (`{label}`) is flat in sigma_r at few states (10-20)", flat_rule,
                           flat(label, lambda grid: [n for n in grid if n in few_states])))
    rows.append(_claim(FIG4, "AGAD is flat in sigma_r at every n_states", flat_rule, flat("agad", lambda grid: grid)))
    return rows


# --- Fig. 5 ---------------------------------------------------------------------------------------------

FIG5_COLUMNS = ("panel", "model", "algo", "sp_subtracted", "n_states", "sigma_r", "epochs", "samples_seen",
                "test_error", "test_loss", "status")  # the CSV has more (repeat, test_accuracy); these are read
TEST_ERROR = Unit("test_error", 1.0, "%", 2)
TEST_LOSS = Unit("test_loss", 1.0, "nats", 3)


@dataclass(frozen=True)
class Panel:
    """One panel of Fig. 5: its network, the axis it sweeps and the metric it plots."""

    name: str
    title: str
    axis: str
    unit: Unit

    @property
    def section(self) -> str:
        return f"Fig. 5{self.name}: {self.title}"


PANELS = (
    Panel("A", "FC on MNIST vs n_states at sigma_r 0.5", "n_states", TEST_ERROR),
    Panel("B", "FC on MNIST vs sigma_r at 20 states", "sigma_r", TEST_ERROR),
    Panel("C", "LeNet-5 on MNIST vs sigma_r at 20 states", "sigma_r", TEST_ERROR),
    Panel("D", "LSTM on War and Peace vs sigma_r at 20 states", "sigma_r", TEST_LOSS),
)
SP_LABEL = {True: "W's SP subtracted", False: "W's SP not subtracted"}


def _flag(value: object) -> bool | None:
    text = str(value).strip().lower()
    return True if text in ("true", "1", "1.0") else False if text in ("false", "0", "0.0") else None


class Fig5:
    """The completed replicas of ``fig5.csv``, one panel and SP variant at a time; one method per claim."""

    def __init__(self, folder: Path) -> None:
        self.table = Table(folder, "fig5.csv", FIG5_COLUMNS)

    def completed(self, panel: Panel, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """The panel's completed replicas that have its metric (``df``: rows of any panel)."""
        if df is None:
            df = _rows_where(self.table.frame, panel=panel.name)
        done = df[df["status"].astype(str) == "completed"]
        done = done.assign(value=pd.to_numeric(done[panel.unit.column]) * panel.unit.scale,
                           sp=done["sp_subtracted"].map(_flag))
        return done[done["value"].notna()]

    def replicas(self, panel: Panel, algo: str, sp: bool) -> pd.DataFrame:
        df = self.completed(panel)
        return _rows_where(df[df["sp"] == sp], f"completed, {SP_LABEL[sp]}", algo=algo)

    def curve(self, panel: Panel, algo: str, sp: bool) -> dict[float, Spread]:
        return spreads_along(self.replicas(panel, algo, sp), panel.axis, "value")

    def fp(self, panel: Panel) -> Spread:
        """The FP baseline: this panel's fp replicas, else the completed fp replicas of its model in any panel."""
        df = self.completed(panel)
        fp = df[df["algo"].astype(str) == "fp"]
        if fp.empty:
            every = self.completed(panel, self.table.frame)
            fp = every[(every["algo"].astype(str) == "fp") & every["model"].isin(set(df["model"]))]
        if fp.empty:
            raise NotMeasured(f"no completed fp rows for panel {panel.name}")
        return Spread.of(fp["value"])

    def settings(self, panel: Panel, sp: bool, *algos: str) -> str:
        df = pd.concat([self.replicas(panel, a, sp) for a in algos])
        fixed = "sigma_r" if panel.axis == "n_states" else "n_states"
        values = sorted({float(v) for v in pd.to_numeric(df[fixed])})
        dropped = int((self.table.frame["panel"].astype(str) == panel.name).sum()) - len(self.completed(panel))
        parts = [", ".join(sorted(set(df["model"].astype(str)))), f"{fixed} " + "/".join(f"{v:g}" for v in values),
                 f"{_counts(df['epochs'])} epochs", f"{_counts(df['samples_seen'])} samples seen",
                 _seeds(df, ["algo", "n_states", "sigma_r"]).replace("seeds", "repeats"),
                 f"{dropped} replica(s) of the panel left out (not completed or no {panel.unit.column})"
                 if dropped else ""]
        return ", ".join(filter(None, parts))

    def _show(self, panel: Panel, algo: str, spreads: dict[float, Spread]) -> str:
        return f"{algo}: " + _along(spreads, panel.unit, panel.axis)

    def ttv2_rises(self, panel: Panel, sp: bool) -> Outcome:
        spreads = self.curve(panel, "ttv2", sp)
        s, rise = pooled_std(_ends(spreads)), _rise(spreads)
        return Outcome(_above(rise, s), f"{self._show(panel, 'ttv2', spreads)}; rise {panel.unit(rise)}, "
                       f"s = {panel.unit(s)}", self.settings(panel, sp, "ttv2"))

    def agad_flat(self, panel: Panel, sp: bool) -> Outcome:
        spreads = self.curve(panel, "agad", sp)
        s, span = pooled_std(spreads.values()), _span(spreads)
        return Outcome(_within(span, s), f"{self._show(panel, 'agad', spreads)}; span {panel.unit(span)}, "
                       f"s = {panel.unit(s)}", self.settings(panel, sp, "agad"))

    def between(self, panel: Panel, label: str, sp: bool) -> Outcome:
        curves = {a: self.curve(panel, a, sp) for a in ("ttv2", label, "agad")}
        s = pooled_std(end for c in curves.values() for end in _ends(c))
        rise = {a: _rise(c) for a, c in curves.items()}
        holds = _within(rise["agad"] - rise[label], s) and _above(rise["ttv2"] - rise[label], s)
        measured = (f"rise from the lowest to the highest {panel.axis}: " + ", ".join(
            f"{a} {panel.unit(r)}" for a, r in rise.items()) + f" {panel.unit.unit}; s = {panel.unit(s)}")
        return Outcome(holds, measured, self.settings(panel, sp, *curves))

    def near_fp(self, panel: Panel, algo: str) -> Outcome:
        spreads, fp = self.curve(panel, algo, True), self.fp(panel)
        gaps = {k: (v.mean - fp.mean, pooled_std([v, fp])) for k, v in spreads.items()}
        worst = max(g for g, _ in gaps.values())
        measured = (f"FP {panel.unit.spread(fp)} {panel.unit.unit} ({fp.n} repeats); {algo} − FP per {panel.axis}: "
                    f"{_versus(gaps, panel.unit, _within)}; largest {panel.unit(worst)} {panel.unit.unit} "
                    f"({100 * worst / fp.mean:+.0f} % of FP)")
        return Outcome(all(_within(g, s) for g, s in gaps.values()), measured, self.settings(panel, True, algo))

    def beats(self, panel: Panel, winner: str, loser: str, sp: bool, top_only: bool) -> Outcome:
        """``winner`` lower than ``loser`` at every axis value both have (``top_only``: at the largest)."""
        mine, theirs = self.curve(panel, winner, sp), self.curve(panel, loser, sp)
        common = sorted(set(mine) & set(theirs))
        if not common:
            raise NotMeasured(f"no {panel.axis} with both {winner} and {loser}")
        gains = {k: (theirs[k].mean - mine[k].mean, pooled_std([mine[k], theirs[k]]))
                 for k in (common[-1:] if top_only else common)}
        measured = (f"{self._show(panel, winner, mine)}; {self._show(panel, loser, theirs)}; {loser} − {winner}: "
                    + _versus(gains, panel.unit, _above))
        return Outcome(all(_above(g, s) for g, s in gains.values()), measured,
                       self.settings(panel, sp, winner, loser))


def fig5_rows(folder: Path) -> list[Row]:
    fig5 = Fig5(folder)
    cttv2 = _cttv2_labels(fig5.table)
    rows: list[Row] = []
    for panel in PANELS:
        metric = "test loss" if panel.unit is TEST_LOSS else "test error"

        def claim(text: str, criterion: str, evaluate: Callable[[], Outcome]) -> None:
            rows.append(_claim(panel.section, text, criterion, evaluate))  # evaluated now, inside the loop

        for sp in (True, False):
            tag = f"[{SP_LABEL[sp]}]"
            if panel.axis == "n_states":
                for algo in [*cttv2, "agad"]:
                    claim(f"{tag} {algo} beats TTv2 at every n_states",
                          f"at every n_states: TTv2 mean − {algo} mean > {SPREADS:g} s ({PAIR_S})",
                          partial(fig5.beats, panel, algo, "ttv2", sp, False))
                for label in cttv2:
                    claim(f"{tag} AGAD beats {label} at the largest n_states",
                          f"{label} mean − AGAD mean > {SPREADS:g} s at the largest n_states ({PAIR_S})",
                          partial(fig5.beats, panel, "agad", label, sp, True))
                continue
            claim(f"{tag} TTv2's {metric} rises with sigma_r",
                  f"mean at the highest − at the lowest sigma_r > {SPREADS:g} s ({PAIR_S})",
                  partial(fig5.ttv2_rises, panel, sp))
            claim(f"{tag} AGAD's {metric} stays flat in sigma_r",
                  f"the means over sigma_r span ≤ {SPREADS:g} s ({AXIS_S})", partial(fig5.agad_flat, panel, sp))
            for label in cttv2:
                claim(f"{tag} {label} lies between: its rise with sigma_r is below TTv2's, not below AGAD's",
                      f"AGAD's rise − {SPREADS:g} s ≤ {label}'s rise ≤ TTv2's rise − {SPREADS:g} s (rise: mean at "
                      f"the highest − at the lowest sigma_r; s: seed std pooled over those six settings)",
                      partial(fig5.between, panel, label, sp))
        if panel.axis == "sigma_r":
            for algo in [*cttv2, "agad"]:
                claim(f"[{SP_LABEL[True]}] {algo} is near FP",
                      f"at every sigma_r: mean − FP mean ≤ {SPREADS:g} s (s: seed std pooled over {algo} there "
                      "and FP)",
                      partial(fig5.near_fp, panel, algo))
    return rows


# --- Fig. 6 ---------------------------------------------------------------------------------------------

FIG6 = "Fig. 6: device asymmetry (bounds w_max widened, step at the SP kept)"
FIG6_KEYS = ("algo", "w_max", "seed")
FIG6_COLUMNS = (*FIG6_KEYS, "n_states", "samples", "eps_w")


def fig6_rows(folder: Path) -> list[Row]:
    table = Table(folder, "fig6.csv", FIG6_COLUMNS)

    def trend(algo: str, expect: str) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            rows = _rows_where(_final(table.frame, FIG6_KEYS, EPS_W), algo=algo)
            spreads = spreads_along(rows, "w_max", "value")
            if len(spreads) < 2:
                raise NotMeasured(f"fig6.csv has {algo} at one w_max only")
            if expect == "flat":
                s, span = pooled_std(spreads.values()), _span(spreads)
                holds, summary = _within(span, s), f"span {EPS_W(span)}, s = {EPS_W(s)}"
            else:
                s, change = pooled_std(_ends(spreads)), _rise(spreads)
                holds = _above(-change, s) if expect == "falls" else _above(change, s)
                summary = f"change {EPS_W(change)}, s = {EPS_W(s)}"
            states = "/".join(f"{int(n)}" for n in sorted({int(n) for n in rows["n_states"]}))
            measured = f"{_along(spreads, EPS_W, 'w_max')}; {summary}"
            return Outcome(holds, measured, f"n_states {states}, " + _grid_settings(table, rows, FIG6_KEYS))

        return evaluate

    change = f"mean at the largest − at the smallest w_max {{}} ({PAIR_S})"
    flat = f"the means over w_max span ≤ {SPREADS:g} s ({AXIS_S})"
    rows = [_claim(FIG6, "in-memory SGD improves with symmetry (larger w_max)", change.format(f"< −{SPREADS:g} s"),
                   trend("sgd", "falls")),
            _claim(FIG6, "TTv2 gets worse with symmetry", change.format(f"> {SPREADS:g} s"), trend("ttv2", "rises"))]
    rows += [_claim(FIG6, f"c-TTv2 (`{label}`) gets worse with symmetry", change.format(f"> {SPREADS:g} s"),
                    trend(label, "rises"))
             for label in _cttv2_labels(table)]
    rows.append(_claim(FIG6, "AGAD is flat in symmetry", flat, trend("agad", "flat")))
    return rows


# --- Table 1 --------------------------------------------------------------------------------------------

TABLE1 = "Table 1: update time per input sample (N = 512)"
TABLE1_COLUMNS = ("algorithm", "setting", "time_ns")
PAPER_TIME_NS = {"SGD": 30.9, "TTv2": 56.3, "c-TTv2": 56.3, "AGAD": 62.1, "MP": 3024.5}
PAPER_AGAD_FAST_NS = 17.1  # n_s = 10, l_max = 1


def _printed(value: float, paper: float) -> bool:
    """The value prints as the paper's one-decimal number."""
    return round(value, 1) == paper


def table1_rows(folder: Path) -> list[Row]:
    table = Table(folder, "table1.csv", TABLE1_COLUMNS)

    def default_setting() -> str:
        return str(_rows_where(table.frame, algorithm="MP")["setting"].iloc[0])

    def paper_times() -> Outcome:
        setting = default_setting()
        times = {a: float(_rows_where(table.frame, algorithm=a, setting=setting)["time_ns"].iloc[0])
                 for a in PAPER_TIME_NS}
        measured = " / ".join(f"{a} {t:.1f}" for a, t in times.items()) + " ns"
        return Outcome(all(_printed(times[a], p) for a, p in PAPER_TIME_NS.items()), measured,
                       f"setting {setting} (from table1.csv)")

    def fast_agad() -> Outcome:
        default = default_setting()
        agad = _rows_where(table.frame, algorithm="AGAD")
        other = agad[agad["setting"].astype(str) != default]
        if other.empty:
            raise NotMeasured("table1.csv has AGAD at its default setting only")
        row = other.iloc[0]
        mp = float(_rows_where(table.frame, algorithm="MP", setting=default)["time_ns"].iloc[0])
        time = float(row["time_ns"])
        return Outcome(_printed(time, PAPER_AGAD_FAST_NS), f"AGAD {time:.1f} ns ({mp / time:.0f}x faster than MP "
                       f"at {mp:.1f} ns)", f"setting {row['setting']} (from table1.csv)")

    return [
        _claim(TABLE1, "30.9 / 56.3 / 56.3 / 62.1 / 3024.5 ns for SGD / TTv2 / c-TTv2 / AGAD / MP",
               "every time rounds to the printed one-decimal value", paper_times),
        _claim(TABLE1, "AGAD with n_s = 10, l_max = 1 takes 17.1 ns (~175x faster than MP)",
               "the time rounds to 17.1 ns", fast_agad),
    ]


# --- Endurance ------------------------------------------------------------------------------------------

ENDURANCE = "Endurance (Discussion): pulses per device and input sample, from the Fig. 5 runs"
PAPER_PULSES = {"A": (0.5, 4.0), "C": (2e-4, 4e-4)}
ORDERS_APART = 4.0  # A needs about 10^4 times more pulses than C
HALF_DECADE = math.sqrt(10.0)
ENDURANCE_COLUMNS = ("panel", "model", "algo", "sp_subtracted", "array", "max_pulses_per_sample",
                     "mean_pulses_per_sample")


def endurance_rows(folder: Path) -> list[Row]:
    table = Table(folder, "fig5_endurance.csv", ENDURANCE_COLUMNS)
    run = ["panel", "model", "algo", "sp_subtracted"]

    def settings(df: pd.DataFrame) -> str:
        models = ", ".join(sorted(set(df["model"].astype(str))))
        return f"{df[run].drop_duplicates().shape[0]} Fig. 5 runs ({models})"

    def pulses(array: str) -> pd.DataFrame:
        return _rows_where(table.frame, array=array)

    def in_range(array: str) -> Callable[[], Outcome]:
        def evaluate() -> Outcome:
            df = pulses(array)
            values = pd.to_numeric(df["max_pulses_per_sample"])
            low, high = PAPER_PULSES[array]
            mean = pd.to_numeric(df["mean_pulses_per_sample"])
            per_model = "; ".join(f"{m}: {v.min():.2g}-{v.max():.2g}" for m, v in values.groupby(df["model"]))
            holds = values.min() >= low / HALF_DECADE and values.max() <= high * HALF_DECADE
            return Outcome(holds, f"max over devices {values.min():.2g}-{values.max():.2g} pulses/sample "
                           f"({per_model}); mean over devices {mean.min():.2g}-{mean.max():.2g}", settings(df))

        return evaluate

    def apart() -> Outcome:
        both = pulses("A").merge(pulses("C"), on=run, suffixes=("_a", "_c"))
        if both.empty:
            raise NotMeasured("no run in fig5_endurance.csv has both arrays A and C")
        a, c = (pd.to_numeric(both[f"max_pulses_per_sample_{x}"]) for x in ("a", "c"))
        positive = c > 0
        if not positive.any():
            raise NotMeasured("C received no pulse in any run")
        orders = np.log10(a[positive] / c[positive])
        median = float(orders.median())
        measured = (f"log10(A / C) per run: {orders.min():.1f}-{orders.max():.1f}, median {median:.1f}"
                    + (f"; {int((~positive).sum())} run(s) with no pulse on C left out" if not positive.all() else ""))
        return Outcome(abs(median - ORDERS_APART) <= 1.0, measured, settings(both))

    return [
        _claim(ENDURANCE, "A needs 0.5-4 pulses per input sample (max over devices)",
               "every run within 0.5-4 widened by half a decade (÷/× √10)", in_range("A")),
        _claim(ENDURANCE, "W (array C) needs 2-4e-4 pulses per input sample",
               "every run within 2e-4-4e-4 widened by half a decade (÷/× √10)", in_range("C")),
        _claim(ENDURANCE, "A and C are about 4 orders of magnitude apart",
               "median over runs of log10(max pulses A / max pulses C) within 4 ± 1", apart),
    ]


# --- the report -----------------------------------------------------------------------------------------

CLAIMS: tuple[Callable[[Path], list[Row]], ...] = (fig3_rows, fig4_rows, fig5_rows, fig6_rows, table1_rows,
                                                   endurance_rows)
SOURCES = ("fig3.csv", "fig4.csv", "fig5.csv", "fig6.csv", "table1.csv", "fig5_endurance.csv")


def claim_rows(figures: Path) -> list[Row]:
    """Every testable claim, evaluated on the CSVs in ``figures``."""
    return [row for rows_of in CLAIMS for row in rows_of(figures)]


def _git_commit() -> str:
    """The checkout this code runs from: short hash, ``+dirty`` with uncommitted changes; else unknown."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def _command(figures: Path) -> str:
    if Path(sys.argv[0]).name == "analog-train":
        return " ".join(["analog-train", *sys.argv[1:]])
    return f"write_report({str(figures)!r})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def _sources(figures: Path) -> list[str]:
    lines = []
    for name in SOURCES:
        path = figures / name
        if path.is_file():
            stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"- `{name}`: written {stamp}")
        else:
            lines.append(f"- `{name}`: missing (its claims are not measured)")
    return lines


def render(figures: Path, out: Path, rows: Sequence[Row]) -> str:
    """REPORT.md: a header saying what, when and from which files, then one table per figure."""
    counts = {v: sum(r.verdict == v for r in rows) for v in (HOLDS, FAILS, NOT_MEASURED)}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Claims report: Rasch et al., Nat. Commun. 15:7133 (2024)",
        "",
        "Which of the paper's claims this tool reproduces. One row per claim it can test: the claim, the "
        "numbers measured, the settings they come from, the criterion and the verdict. Every measured number is "
        "computed from the CSVs below (settings also from the runs' `summary.json`); the only numbers typed in are "
        f"the paper's. A difference counts when it exceeds {SPREADS:g} seed standard deviations `s` (pooled over the "
        "settings compared; each criterion says which), ✗ marks the part of a measurement that fails its criterion, "
        "and a claim whose data is missing or has a single seed is *not measured*.",
        "",
        f"Made {now} by `{_command(figures)}` at commit {_git_commit()}. Regenerate with "
        f"`analog-train report --figures {figures}{'' if out == figures / REPORT_NAME else f' --out {out}'}` "
        "(`make figures` writes it too).",
        "",
        "Sources (in this folder):",
        *_sources(figures),
        "",
        f"**{counts[HOLDS]} hold, {counts[FAILS]} do not hold, {counts[NOT_MEASURED]} not measured.**",
    ]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines += ["", f"## {section}", "", "| claim (paper) | measured | settings | criterion | verdict |",
                      "|---|---|---|---|---|"]
        verdict = f"**{row.verdict}**" if row.verdict != NOT_MEASURED else f"*{row.verdict}*"
        lines.append("| " + " | ".join(_cell(c) for c in (row.claim, row.measured, row.settings, row.criterion))
                     + f" | {verdict} |")
    return "\n".join(lines) + "\n"


def write_report(figures: Path, out: Path | None = None) -> Path:
    """Write the claims report of the figures folder ``figures`` (default ``<figures>/REPORT.md``)."""
    figures = Path(figures)
    if not figures.is_dir():
        what = "is not a folder" if figures.exists() else "does not exist"
        raise FileNotFoundError(f"figures folder {figures} {what} (make it with `analog-train figures`)")
    out = Path(out) if out is not None else figures / REPORT_NAME
    text = render(figures, out, claim_rows(figures))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return out

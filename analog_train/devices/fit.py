"""Fit a device preset to measured pulse-response data (``analog-train devices fit``).

Input: one row per read, columns ``device_id``, ``pulse_index``, ``direction`` (up/down, +1/-1,
or 0 for a read without a pulse) and ``weight`` (or ``conductance``, then normalised so that the
mean device spans about [-1, 1], the map kept as ``conductance`` in the YAML); the weight is read
after the row's pulse; an optional ``cycle`` column numbers repeated measurements of a device
(pulse indices restart per cycle). Each pair of consecutive pulse indices of a device and cycle
gives one step ``w_t - w_{t-1}`` taken at ``w_{t-1}``.

Per device and direction the noise-free step-vs-weight law of the family is fitted by least
squares; steps taken close enough to a bound to have been clipped are left out (the clip
truncates the noise and would bias both the law and the noise). The c2c noise comes from the
residuals, the device-to-device spreads from the spread of the per-device fits, mapped back with
aihwkit's conventions (``a_up = (g + r + min(up_down, 0)) dw_min``, ...).

Fit quality (:class:`Quality`): the RMS of the step residuals and R^2 of the law against a constant
step per device and direction (constant_step scores 0; a law that explains how the step depends
on the weight scores up to 1 less the c2c noise). :func:`verdict` refuses a fit whose parameters
are not a valid device (degenerate) or whose R^2 is clearly below another family's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from analog_train.config import DEVICE_FAMILIES
from analog_train.config.rules import keys_of

MIN_STEPS = 10  # per device and direction
CLIP_SIGMAS = 3.0  # steps whose clip probability exceeds ~0.1 % are left out
PIECEWISE_NODES = 5
RMS_MARGIN = 1.1  # a family whose residual RMS is 10 % above another family's is the wrong one
SCALE_LIMIT = 5.0  # a step scale this many times the largest measured steps (95th percentile) is degenerate
EXP_GAMMA = 50.0  # |gamma| of the exp_step fit (a = 0.5, b = 0): the schema's limit on the exponent
COMPARE_DEVICES = 8  # the other families are compared on the first few devices only (enough, and quick)
DIRECTIONS = {"up": 1, "+1": 1, "1": 1, "1.0": 1, "+": 1, "down": -1, "dn": -1, "-1": -1, "-1.0": -1, "-": -1,
              "0": 0, "0.0": 0, "none": 0, "read": 0}


class FitDataError(ValueError):
    """Bad input data; the message names the row or column."""


@dataclass(frozen=True)
class FamilyFit:
    """A family's step magnitude ``model(theta, w, lo, hi, up)``; ``theta[0]`` is the step scale.

    ``init(m, lo, hi, up, w, steps)`` gives the starting ``theta`` from the median step ``m`` (and the
    data: weights ``w`` before the ``steps``); ``lo``/``hi``
    are the device's observed extremes (its hard bounds when the data saturate). ``limits`` gives
    least-squares box constraints where the law needs them.
    """

    params: tuple[str, ...]
    model: Callable[[np.ndarray, np.ndarray, float, float, bool], np.ndarray]
    init: Callable[..., list[float]]
    additive_noise: bool = False  # soft_bounds (paper Eq. 4): noise std s * a, else s * |step|
    bound_from_slope: bool = False  # soft_bounds: the bound is where the affine step vanishes
    limits: Callable[[float, float, bool], tuple[list[float], list[float]]] | None = None
    # exp_step: the shape (A, gamma) is a mean parameter (aihwkit draws no d2d spread of it), and one
    # device's noisy data trade its scale against its A: the shape is fitted to all devices at once.
    shared_shape: bool = False


def _affine(t, w, lo, hi, up):
    return t[0] + t[1] * w


def _pow(t, w, lo, hi, up):
    """``c (b - w)^gamma`` up, ``c (w - b)^gamma`` down: the step vanishes at the fitted bound ``b``,
    so devices need not saturate; ``a = c (b_max - b_min)^gamma`` once both bounds are known."""
    return t[0] * np.clip((t[2] - w) if up else (w - t[2]), 0.0, None) ** t[1]


def _pow_init(m, lo, hi, up, *_):
    span = hi - lo
    return [m / (0.6 * span), 1.0, hi + 0.1 * span if up else lo - 0.1 * span]


def _pow_limits(lo, hi, up):
    return ([0.0, 0.05, hi], [np.inf, 20.0, np.inf]) if up else ([0.0, 0.05, -np.inf], [np.inf, 20.0, lo])


def _exp(t, w, lo, hi, up):
    z = w / (hi - lo)  # a = 0.5, b = 0
    return t[0] * np.maximum(1.0 - t[1] * np.exp(t[2] * z if up else -t[2] * z), 0.0)


def _exp_init(m, lo, hi, up, w, steps):
    """A, gamma from a line through ``log(1 - step / scale)`` against ``z`` (``scale`` a little above the
    largest steps): the law of a device whose step shrinks toward one bound; else a mild start."""
    scale = 1.1 * float(np.quantile(steps, 0.95))
    z = w / (hi - lo)
    y = 1.0 - steps / scale
    ok = y > 0.05
    if scale > 0 and ok.sum() > 10 and np.ptp(z[ok]) > 0:
        slope, intercept = np.polyfit(z[ok], np.log(y[ok]), 1)
        gamma = float(np.clip(slope if up else -slope, -EXP_GAMMA, EXP_GAMMA))
        return [scale, float(np.exp(intercept)), gamma]
    return [m, 0.1, 1.0]


def _exp_limits(lo, hi, up):
    return [0.0, -1e6, -EXP_GAMMA], [np.inf, 1e6, EXP_GAMMA]


def _piecewise(t, w, lo, hi, up):
    return np.interp(w, np.linspace(lo, hi, len(t)), t)


FAMILIES: dict[str, FamilyFit] = {
    "constant_step": FamilyFit(("a",), lambda t, w, lo, hi, up: np.full_like(w, t[0]), lambda m, *_: [m]),
    "linear_step": FamilyFit(("a", "k"), _affine, lambda m, *_: [m, 0.0]),
    "soft_bounds": FamilyFit(("a", "k"), _affine, lambda m, *_: [m, 0.0], additive_noise=True, bound_from_slope=True),
    "pow_step": FamilyFit(("c", "gamma", "b"), _pow, _pow_init, limits=_pow_limits),
    "exp_step": FamilyFit(("a", "A", "gamma"), _exp, _exp_init, limits=_exp_limits, shared_shape=True),
    "piecewise_step": FamilyFit(tuple(f"v{i}" for i in range(PIECEWISE_NODES)), _piecewise,
                                lambda m, *_: [m] * PIECEWISE_NODES,  # nodes >= 0: a step never reverses
                                limits=lambda lo, hi, up: ([0.0] * PIECEWISE_NODES, [np.inf] * PIECEWISE_NODES)),
}


# -- input ---------------------------------------------------------------------------------------
@dataclass
class PulseData:
    """Checked pulse data (columns device_id, cycle, pulse_index, direction, weight) and, for data
    given as conductance, the map back (``conductance = offset + per_weight * weight``)."""

    frame: pd.DataFrame
    conductance: dict[str, float] | None = None


def load_pulse_data(path: str | Path) -> PulseData:
    """Read and check a pulse-response CSV; columns device_id, pulse_index, direction, weight (or
    conductance), optionally cycle."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FitDataError(f"{path}: cannot read as CSV ({err})") from None
    raw.columns = [c.strip().lower() for c in raw.columns]
    value = "weight" if "weight" in raw.columns else "conductance"
    missing = [c for c in ("device_id", "pulse_index", "direction", value) if c not in raw.columns]
    if missing:
        raise FitDataError(f"{path}: missing column(s) {', '.join(missing)} "
                           "(need device_id, pulse_index, direction and weight or conductance; cycle optional)")
    if raw.empty:
        raise FitDataError(f"{path}: no data rows")
    out = pd.DataFrame({"device_id": raw["device_id"].str.strip()})
    _first_bad(path, raw, "device_id", out["device_id"] == "", "a device id")
    numeric = ["pulse_index", value, "direction"] + (["cycle"] if "cycle" in raw.columns else [])
    for col in numeric:
        text = raw[col].str.strip()
        num = text.str.lower().map(DIRECTIONS) if col == "direction" else pd.to_numeric(text, errors="coerce")
        bad = num.isna() | ~np.isfinite(num.astype(float))
        if col in ("pulse_index", "cycle"):
            bad |= num.notna() & (num != num.round())
        what = {"direction": "up/down, +1/-1 or 0", "pulse_index": "an integer", "cycle": "an integer"}
        _first_bad(path, raw, col, bad, what.get(col, "a number"))
        out[col] = num.astype(float)
    if "cycle" not in out:
        out["cycle"] = 0.0
    dup = out.duplicated(["device_id", "cycle", "pulse_index"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        hint = "" if "cycle" in raw.columns else " (repeated measurements: number them in a cycle column)"
        raise FitDataError(f"{path} line {i + 2}: duplicate pulse_index {int(out['pulse_index'].iloc[i])} "
                           f"for device {out['device_id'].iloc[i]}{hint}")
    conductance = None
    if value == "conductance":  # mean device -> about [-1, 1]
        g = out.groupby("device_id")[value]
        hi, lo = g.max().mean(), g.min().mean()
        conductance = {"offset": float(0.5 * (hi + lo)), "per_weight": float(0.5 * (hi - lo) or 1.0)}
        out[value] = (out[value] - conductance["offset"]) / conductance["per_weight"]
    frame = out.rename(columns={value: "weight"}).astype({"direction": int})
    return PulseData(frame[["device_id", "cycle", "pulse_index", "direction", "weight"]], conductance)


def _first_bad(path: str | Path, raw: pd.DataFrame, col: str, bad: pd.Series, what: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FitDataError(f"{path} line {i + 2}, column {col}: {raw[col].iloc[i]!r} is not {what}")


def pulse_steps(data: pd.DataFrame, path: str | Path = "data") -> pd.DataFrame:
    """One row per pulse that follows a read at the previous pulse index of its cycle: weight before, step."""
    d = data.sort_values(["device_id", "cycle", "pulse_index"], kind="stable")
    prev = d.groupby(["device_id", "cycle"])[["pulse_index", "weight"]].shift(1)
    ok = (d["direction"] != 0) & (d["pulse_index"] - prev["pulse_index"] == 1)
    steps = pd.DataFrame({"device_id": d["device_id"], "direction": d["direction"], "weight": prev["weight"],
                          "step": d["direction"] * (d["weight"] - prev["weight"])})[ok]
    counts = steps.groupby(["device_id", "direction"]).size().unstack(fill_value=0).reindex(
        index=d["device_id"].unique(), columns=[1, -1], fill_value=0)
    few = counts[(counts < MIN_STEPS).any(axis=1)]
    if len(few):
        dev, (n_up, n_dn) = few.index[0], few.iloc[0]
        raise FitDataError(f"{path}: device {dev} has {n_up} up and {n_dn} down pulses after a read; "
                           f"need at least {MIN_STEPS} of each per device")
    return steps.reset_index(drop=True)


# -- fitting -------------------------------------------------------------------------------------
def _fit_direction(fam: FamilyFit, w: np.ndarray, m: np.ndarray, lo: float, hi: float, up: bool) -> np.ndarray:
    scale = float(np.median(np.abs(m))) or 1e-6
    x0 = np.array(fam.init(scale, lo, hi, up, w, m), dtype=float)
    box = fam.limits(lo, hi, up) if fam.limits else (-np.inf, np.inf)
    if fam.limits:
        x0 = np.clip(x0, np.array(box[0]) + 1e-9, box[1])
    sol = least_squares(lambda t: (fam.model(t, w, lo, hi, up) - m) / scale, x0, bounds=box, x_scale="jac")
    return sol.x


def _noise(fam: FamilyFit, theta: np.ndarray, w: np.ndarray, m: np.ndarray, lo: float, hi: float, up: bool) -> float:
    """Relative c2c noise ``s`` of one device and direction, from the residuals."""
    pred = fam.model(theta, w, lo, hi, up)
    dof = max(len(m) - len(theta), 1)
    if fam.additive_noise:
        return float(np.sqrt(np.sum((m - pred) ** 2) / dof) / abs(theta[0]))
    big = pred > 0.1 * np.abs(pred).max()
    return float(np.sqrt(np.sum(((m - pred) / pred)[big] ** 2) / max(big.sum() - len(theta), 1)))


def fit_device(fam: FamilyFit, steps: pd.DataFrame, lo: float, hi: float) -> tuple[dict, np.ndarray]:
    """Fit one device: per direction the step law and s, twice (the second pass drops clip-prone steps)."""
    out: dict[str, float] = {"bmin": lo, "bmax": hi}
    used = np.ones(len(steps), dtype=bool)
    for up, key in ((True, "up"), (False, "dn")):
        sel = (steps["direction"] == (1 if up else -1)).to_numpy()
        w, m = steps["weight"].to_numpy()[sel], steps["step"].to_numpy()[sel]
        keep = np.ones(len(w), dtype=bool)
        for _ in range(2):
            theta = _fit_direction(fam, w[keep], m[keep], lo, hi, up)
            s = _noise(fam, theta, w[keep], m[keep], lo, hi, up)
            pred = fam.model(theta, w, lo, hi, up)
            sd = s * (abs(theta[0]) if fam.additive_noise else np.abs(pred))
            room = (hi - w if up else w - lo) - pred
            new = room > CLIP_SIGMAS * sd
            if new.sum() < len(theta) + MIN_STEPS // 2:
                break
            keep = new
        theta = _fit_direction(fam, w[keep], m[keep], lo, hi, up)
        s = _noise(fam, theta, w[keep], m[keep], lo, hi, up)
        used[np.flatnonzero(sel)] = keep
        for name, v in zip(fam.params, theta):
            out[f"{name}_{key}"] = float(v)
        out[f"c2c_{key}"] = s
        if fam.bound_from_slope and theta[1] != 0 and -theta[0] / theta[1] * (1 if up else -1) > 0:
            out["bmax" if up else "bmin"] = float(-theta[0] / theta[1])
        if fam.model is _piecewise:  # the scale of the middle node: nodes relative to it, as aihwkit's granularity
            middle = float(theta[len(theta) // 2])
            out[f"a_{key}"] = middle if middle > 1e-3 * float(np.max(theta)) else float(np.mean(theta))
        if fam.model is _pow:
            out["bmax" if up else "bmin"] = float(theta[2])
    if fam.model is _pow:
        for key in ("up", "dn"):
            out[f"a_{key}"] = out[f"c_{key}"] * (out["bmax"] - out["bmin"]) ** out[f"gamma_{key}"]
    return out, used


def _split(x_up: np.ndarray, x_dn: np.ndarray) -> tuple[float, float, float, float]:
    """aihwkit's (mean, up_down, dtod, up_down_dtod) of per-device up/down values.

    ``x_up = (g + r + min(ud, 0)) x``, ``x_dn = (g - r - max(ud, 0)) x`` with mean gain 1 and
    mean r 0: the larger mean is ``x`` and the difference of the means ``ud x``.
    """
    mean = max(x_up.mean(), x_dn.mean())
    ud = (x_up.mean() - x_dn.mean()) / mean
    gain = (x_up + x_dn + abs(ud) * mean) / (2 * mean)
    r = (x_up - x_dn - ud * mean) / (2 * mean)
    return float(mean), float(ud), _std(gain), _std(r)


def _std(values: Any) -> float:
    """Sample standard deviation; 0 for a single device (no device-to-device spread to see)."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


@dataclass(frozen=True)
class Quality:
    """How well a family's law describes the steps that were used (not left out as clip-prone)."""

    rms: float  # RMS of step - law, weight units
    r2: float  # 1 - SS_res / SS_tot, SS_tot about each device's and direction's mean step

    def __str__(self) -> str:
        return f"R^2 {self.r2:.3f}, residual RMS {self.rms:.3g}"


@dataclass
class FitResult:
    family: str
    config: dict[str, Any]  # device YAML fields
    per_device: pd.DataFrame  # one row per device: fitted parameters
    steps: pd.DataFrame  # one row per step: device_id, direction, weight, step, model, used
    quality: Quality
    warnings: list[str]


def fit(data: PulseData, family: str, path: str | Path = "data") -> FitResult:
    """Fit ``family`` to checked pulse data (see :func:`load_pulse_data`)."""
    if family not in FAMILIES:
        raise FitDataError(f"--family {family}: must be one of {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    frame = data.frame
    steps = pulse_steps(frame, path)
    bounds = frame.groupby("device_id")["weight"].agg(["min", "max"])
    rows, used, model = [], np.zeros(len(steps), dtype=bool), np.zeros(len(steps))
    devices = steps.groupby("device_id").indices
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a wrong family may blow up: judged below
        for dev, idx in devices.items():
            res, keep = fit_device(fam, steps.iloc[idx], *bounds.loc[dev, ["min", "max"]].astype(float))
            rows.append({"device_id": dev, **res})
            used[idx] = keep
        per = pd.DataFrame(rows)
        steps = steps.assign(used=used)
        if fam.shared_shape and len(per) > 1:
            per = _refit_scales(fam, steps, per, devices)
        for row, idx in zip(per.itertuples(index=False), devices.values()):
            for up, key in ((True, "up"), (False, "dn")):
                theta = np.array([getattr(row, f"{n}_{key}") for n in fam.params])
                sel = idx[steps["direction"].to_numpy()[idx] == (1 if up else -1)]
                model[sel] = fam.model(theta, steps["weight"].to_numpy()[sel], row.bmin, row.bmax, up)
        steps = steps.assign(model=model)
        config = to_config(per, family, fam)
    warnings = []
    if len(per) == 1:
        warnings.append("one device: its device-to-device spreads (*_dtod) are set to 0; fit several devices "
                        "to measure them")
    if data.conductance is not None:
        config["conductance"] = {k: float(f"{v:.7g}") for k, v in data.conductance.items()}
    return FitResult(family, config, per, steps, quality(steps), warnings)


def _refit_scales(fam: FamilyFit, steps: pd.DataFrame, per: pd.DataFrame, devices: dict) -> pd.DataFrame:
    """Per direction, one shape (``theta[1:]``) for all devices and a scale ``theta[0]`` per device, fitted
    jointly by least squares on the used steps (from the median shape; each device's scale is the
    best one for the shape, so only the shape is searched); then the c2c noise."""
    per = per.copy()
    for up, key in ((True, "up"), (False, "dn")):
        names = [f"{n}_{key}" for n in fam.params]
        data = []
        for i, idx in enumerate(devices.values()):
            d = steps.iloc[idx]
            d = d[(d["direction"] == (1 if up else -1)).to_numpy() & d["used"].to_numpy()]
            data.append((d["weight"].to_numpy(), d["step"].to_numpy(), per.loc[i, "bmin"], per.loc[i, "bmax"]))
        typical = float(np.median(np.abs(np.concatenate([m for _, m, _, _ in data])))) or 1e-6

        def thetas(shape: np.ndarray) -> list[np.ndarray]:
            out = []
            for w, m, lo, hi in data:
                law = fam.model(np.array([1.0, *shape]), w, lo, hi, up)
                norm = float(law @ law)
                out.append(np.array([max(float(law @ m) / norm, 0.0) if norm > 0 else 0.0, *shape]))
            return out

        def residuals(shape: np.ndarray) -> np.ndarray:
            return np.concatenate([fam.model(t, w, lo, hi, up) - m for t, (w, m, lo, hi) in zip(thetas(shape), data)]) / typical

        lower, upper = fam.limits(0.0, 1.0, up) if fam.limits else ([-np.inf] * len(names), [np.inf] * len(names))
        x0 = np.clip(per[names[1:]].median().to_numpy(dtype=float), np.array(lower[1:]) + 1e-12, upper[1:])
        shape = least_squares(residuals, x0, bounds=(lower[1:], upper[1:]), x_scale="jac").x
        for i, (theta, (w, m, lo, hi)) in enumerate(zip(thetas(shape), data)):
            per.loc[i, names] = theta
            per.loc[i, f"c2c_{key}"] = _noise(fam, theta, w, m, lo, hi, up)
    return per


def quality(steps: pd.DataFrame) -> Quality:
    """:class:`Quality` of the fitted ``model`` column over the used steps."""
    used = steps[steps["used"]]
    resid = used["step"] - used["model"]
    spread = used["step"] - used.groupby(["device_id", "direction"])["step"].transform("mean")
    ss_tot = float((spread**2).sum())
    ss_res = float((resid**2).sum())
    if not np.isfinite(ss_res):
        return Quality(float("inf"), float("-inf"))
    return Quality(float(np.sqrt(ss_res / max(len(used), 1))), 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0)


def verdict(result: FitResult, qualities: dict[str, Quality]) -> str | None:
    """Why ``result`` should not be written (None: it may); ``qualities``: every family's on the same data.

    Degenerate: its parameters are not a valid device (the family's schema rejects them), or its
    step scale lies far beyond the measured steps (parameters the data do not determine, e.g.
    exp_step's scale against its A on data without curvature). Wrong family: another family
    leaves clearly smaller residuals (RMS_MARGIN) on the same data.
    """
    from analog_train.config import ConfigError, build_device

    try:
        build_device(result.config)
    except ConfigError as err:
        return f"the {result.family} fit is degenerate ({result.quality}): {err}"
    largest = float(np.quantile(result.steps["step"].abs(), 0.95))
    if result.config["dw_min"] > SCALE_LIMIT * largest:
        return (f"the {result.family} fit is degenerate ({result.quality}): dw_min={result.config['dw_min']:.4g} is "
                f"more than {SCALE_LIMIT:g} times the largest measured steps ({largest:.4g})")
    own = qualities[result.family]
    best = min(qualities.items(), key=lambda kv: kv[1].rms)
    if own.rms > RMS_MARGIN * best[1].rms:
        return (f"the {result.family} fit describes these data poorly ({own}); "
                f"--family {best[0]} fits better ({best[1]})")
    return None


def compare(data: PulseData, family: str, path: str | Path = "data") -> tuple[FitResult, dict[str, Quality]]:
    """The fit of ``family``, and the quality of every family (``family`` included) fitted to the same
    first COMPARE_DEVICES devices."""
    result = fit(data, family, path)
    first = list(dict.fromkeys(data.frame["device_id"]))[:COMPARE_DEVICES]
    if len(first) == result.per_device.shape[0]:
        qualities = {name: result.quality if name == family else fit(data, name, path).quality for name in FAMILIES}
    else:
        sample = PulseData(data.frame[data.frame["device_id"].isin(first)], data.conductance)
        qualities = {name: fit(sample, name, path).quality for name in FAMILIES}
    return result, qualities


def to_config(per: pd.DataFrame, family: str, fam: FamilyFit) -> dict[str, Any]:
    """Device-config fields (aihwkit names) from the per-device fits."""
    dw_min, up_down, dw_dtod, ud_dtod = _split(per["a_up"].to_numpy(), per["a_dn"].to_numpy())
    w_max, w_min = float(per["bmax"].mean()), float(per["bmin"].mean())
    rel = lambda v, m: _std(v) / abs(m) if m else 0.0  # noqa: E731
    cfg: dict[str, Any] = {
        "family": family, "dw_min": dw_min, "dw_min_dtod": dw_dtod, "dw_min_dtod_log_normal": False,
        "dw_min_std": float(np.sqrt((0.5 * (per["c2c_up"] ** 2 + per["c2c_dn"] ** 2)).mean())),
        "up_down": up_down, "up_down_dtod": ud_dtod,
        "w_max": w_max, "w_min": w_min, "w_max_dtod": rel(per["bmax"], w_max), "w_min_dtod": rel(per["bmin"], w_min),
        "mult_noise": not fam.additive_noise,
    }
    if family == "soft_bounds":
        cfg.update(slope_up_dtod=0.0, slope_down_dtod=0.0)
    elif family == "linear_step":  # k = -gamma a / R with the mean bound as R (mean_bound_reference)
        g_up, g_dn = -per["k_up"] * w_max / per["a_up"], -per["k_dn"] * w_min / per["a_dn"]
        cfg.update(gamma_up=float(g_up.mean()), gamma_down=float(g_dn.mean()), gamma_up_dtod=_std(g_up),
                   gamma_down_dtod=_std(g_dn), mean_bound_reference=True, allow_increasing=False)
    elif family == "pow_step":
        pg, pud, pg_dtod, pud_dtod = _split(per["gamma_up"].to_numpy(), per["gamma_dn"].to_numpy())
        cfg.update(pow_gamma=pg, pow_up_down=pud, pow_gamma_dtod=pg_dtod, pow_up_down_dtod=pud_dtod)
    elif family == "exp_step":
        cfg.update(a=0.5, b=0.0, A_up=float(per["A_up"].median()), A_down=float(per["A_dn"].median()),
                   gamma_up=float(per["gamma_up"].median()), gamma_down=float(per["gamma_dn"].median()),
                   dw_min_std_add=0.0, dw_min_std_slope=0.0)
    elif family == "piecewise_step":
        for key, name in (("up", "piecewise_up"), ("dn", "piecewise_down")):
            nodes = per[[f"v{i}_{key}" for i in range(PIECEWISE_NODES)]].to_numpy() / per[[f"a_{key}"]].to_numpy()
            cfg[name] = [float(v) for v in nodes.mean(axis=0)]
        cfg["dw_min"] = float(max(per["a_up"].mean(), per["a_dn"].mean()))
    keys = keys_of(DEVICE_FAMILIES[family])  # mult_noise: only the families that have the switch
    return {k: (round(v, 6) if isinstance(v, float) else [round(x, 6) for x in v] if isinstance(v, list) else v)
            for k, v in cfg.items() if k in keys}


def config_yaml(result: FitResult, source: str, preset: str | None = None) -> str:
    """The fitted device as a YAML a run can use; ``preset`` names the device whose algorithm
    settings it takes (its ``device_preset``; none: the generic settings)."""
    from omegaconf import OmegaConf

    body: dict[str, Any] = {}
    if preset:
        body["defaults"] = [{"override /device_preset@_global_.device_preset": preset}, "_self_"]
    body.update(result.config, source=source)
    header = [f"# source: {source}", f"# fit quality ({result.family}): {result.quality}"]
    return "\n".join(header) + "\n" + OmegaConf.to_yaml(body)

"""Fit a device preset to measured pulse-response data (``analog-train devices fit``).

Input: one row per read, columns ``device_id``, ``pulse_index``, ``direction`` (up/down, +1/-1,
or 0 for a read without a pulse) and ``weight`` (or ``conductance``, then normalised so that the
mean device spans about [-1, 1]); the weight is read after the row's pulse. Each pair of
consecutive pulse indices gives one step ``w_t - w_{t-1}`` taken at ``w_{t-1}``.

Per device and direction the noise-free step-vs-weight law of the family is fitted by least
squares; steps taken close enough to a bound to have been clipped are left out (the clip
truncates the noise and would bias both the law and the noise). The c2c noise comes from the
residuals, the device-to-device spreads from the spread of the per-device fits, mapped back with
aihwkit's conventions (``a_up = (g + r + min(up_down, 0)) dw_min``, ...).
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
DIRECTIONS = {"up": 1, "+1": 1, "1": 1, "1.0": 1, "+": 1, "down": -1, "dn": -1, "-1": -1, "-1.0": -1, "-": -1,
              "0": 0, "0.0": 0, "none": 0, "read": 0}


class FitDataError(ValueError):
    """Bad input data; the message names the row or column."""


@dataclass(frozen=True)
class FamilyFit:
    """A family's step magnitude ``model(theta, w, lo, hi, up)``; ``theta[0]`` is the step scale.

    ``init(m, lo, hi, up)`` gives the starting ``theta`` from the median step ``m``; ``lo``/``hi``
    are the device's observed extremes (its hard bounds when the data saturate). ``limits`` gives
    least-squares box constraints where the law needs them.
    """

    params: tuple[str, ...]
    model: Callable[[np.ndarray, np.ndarray, float, float, bool], np.ndarray]
    init: Callable[[float, float, float, bool], list[float]]
    additive_noise: bool = False  # soft_bounds (paper Eq. 4): noise std s * a, else s * |step|
    bound_from_slope: bool = False  # soft_bounds: the bound is where the affine step vanishes
    limits: Callable[[float, float, bool], tuple[list[float], list[float]]] | None = None


def _affine(t, w, lo, hi, up):
    return t[0] + t[1] * w


def _pow(t, w, lo, hi, up):
    """``c (b - w)^gamma`` up, ``c (w - b)^gamma`` down: the step vanishes at the fitted bound ``b``,
    so devices need not saturate; ``a = c (b_max - b_min)^gamma`` once both bounds are known."""
    return t[0] * np.clip((t[2] - w) if up else (w - t[2]), 0.0, None) ** t[1]


def _pow_init(m, lo, hi, up):
    span = hi - lo
    return [m / (0.6 * span), 1.0, hi + 0.1 * span if up else lo - 0.1 * span]


def _pow_limits(lo, hi, up):
    return ([0.0, 0.05, hi], [np.inf, 20.0, np.inf]) if up else ([0.0, 0.05, -np.inf], [np.inf, 20.0, lo])


def _exp(t, w, lo, hi, up):
    z = w / (hi - lo)  # a = 0.5, b = 0
    return t[0] * np.maximum(1.0 - t[1] * np.exp(t[2] * z if up else -t[2] * z), 0.0)


def _piecewise(t, w, lo, hi, up):
    return np.interp(w, np.linspace(lo, hi, len(t)), t)


FAMILIES: dict[str, FamilyFit] = {
    "constant_step": FamilyFit(("a",), lambda t, w, lo, hi, up: np.full_like(w, t[0]), lambda m, *_: [m]),
    "linear_step": FamilyFit(("a", "k"), _affine, lambda m, *_: [m, 0.0]),
    "soft_bounds": FamilyFit(("a", "k"), _affine, lambda m, *_: [m, 0.0], additive_noise=True, bound_from_slope=True),
    "pow_step": FamilyFit(("c", "gamma", "b"), _pow, _pow_init, limits=_pow_limits),
    "exp_step": FamilyFit(("a", "A", "gamma"), _exp, lambda m, *_: [m, 0.1, 1.0]),
    "piecewise_step": FamilyFit(tuple(f"v{i}" for i in range(PIECEWISE_NODES)), _piecewise,
                                lambda m, *_: [m] * PIECEWISE_NODES),
}


# -- input ---------------------------------------------------------------------------------------
def load_pulse_data(path: str | Path) -> pd.DataFrame:
    """Read and check a pulse-response CSV; columns device_id, pulse_index, direction, weight."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FitDataError(f"{path}: cannot read as CSV ({err})") from None
    raw.columns = [c.strip().lower() for c in raw.columns]
    value = "weight" if "weight" in raw.columns else "conductance"
    missing = [c for c in ("device_id", "pulse_index", "direction", value) if c not in raw.columns]
    if missing:
        raise FitDataError(f"{path}: missing column(s) {', '.join(missing)} "
                           "(need device_id, pulse_index, direction and weight or conductance)")
    if raw.empty:
        raise FitDataError(f"{path}: no data rows")
    out = pd.DataFrame({"device_id": raw["device_id"].str.strip()})
    _first_bad(path, raw, "device_id", out["device_id"] == "", "a device id")
    for col in ("pulse_index", value, "direction"):
        text = raw[col].str.strip()
        num = text.str.lower().map(DIRECTIONS) if col == "direction" else pd.to_numeric(text, errors="coerce")
        bad = num.isna() | ~np.isfinite(num.astype(float))
        if col == "pulse_index":
            bad |= num.notna() & (num != num.round())
        _first_bad(path, raw, col, bad, {"direction": "up/down, +1/-1 or 0", "pulse_index": "an integer"}.get(col, "a number"))
        out[col] = num.astype(float)
    dup = out.duplicated(["device_id", "pulse_index"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise FitDataError(f"{path} line {i + 2}: duplicate pulse_index {int(out['pulse_index'].iloc[i])} "
                           f"for device {out['device_id'].iloc[i]}")
    if value == "conductance":  # mean device -> about [-1, 1]
        g = out.groupby("device_id")[value]
        hi, lo = g.max().mean(), g.min().mean()
        out[value] = (out[value] - 0.5 * (hi + lo)) / (0.5 * (hi - lo) or 1.0)
    return out.rename(columns={value: "weight"}).astype({"direction": int})


def _first_bad(path: str | Path, raw: pd.DataFrame, col: str, bad: pd.Series, what: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FitDataError(f"{path} line {i + 2}, column {col}: {raw[col].iloc[i]!r} is not {what}")


def pulse_steps(data: pd.DataFrame, path: str | Path = "data") -> pd.DataFrame:
    """One row per pulse that follows a read at the previous pulse index: weight before, step."""
    d = data.sort_values(["device_id", "pulse_index"], kind="stable")
    prev = d.groupby("device_id")[["pulse_index", "weight"]].shift(1)
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
    x0 = np.array(fam.init(scale, lo, hi, up), dtype=float)
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
        if fam.model is _piecewise:
            out[f"a_{key}"] = float(np.mean(theta))
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
    std = lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
    return float(mean), float(ud), std(gain), std(r)


@dataclass
class FitResult:
    config: dict[str, Any]  # device YAML fields
    per_device: pd.DataFrame  # one row per device: fitted parameters
    steps: pd.DataFrame  # one row per step: device_id, direction, weight, step, model, used


def fit(data: pd.DataFrame, family: str, path: str | Path = "data") -> FitResult:
    """Fit ``family`` to checked pulse data (see :func:`load_pulse_data`)."""
    if family not in FAMILIES:
        raise FitDataError(f"--family {family}: must be one of {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    steps = pulse_steps(data, path)
    bounds = data.groupby("device_id")["weight"].agg(["min", "max"])
    rows, used, model = [], np.zeros(len(steps), dtype=bool), np.zeros(len(steps))
    for dev, idx in steps.groupby("device_id").indices.items():
        lo, hi = float(bounds.loc[dev, "min"]), float(bounds.loc[dev, "max"])
        res, keep = fit_device(fam, steps.iloc[idx], lo, hi)
        rows.append({"device_id": dev, **res})
        used[idx] = keep
        for up, key in ((True, "up"), (False, "dn")):
            theta = np.array([res[f"{n}_{key}"] for n in fam.params])
            sel = idx[steps["direction"].to_numpy()[idx] == (1 if up else -1)]
            model[sel] = fam.model(theta, steps["weight"].to_numpy()[sel], lo, hi, up)
    per = pd.DataFrame(rows)
    return FitResult(to_config(per, family, fam), per, steps.assign(model=model, used=used))


def to_config(per: pd.DataFrame, family: str, fam: FamilyFit) -> dict[str, Any]:
    """Device-config fields (aihwkit names) from the per-device fits."""
    dw_min, up_down, dw_dtod, ud_dtod = _split(per["a_up"].to_numpy(), per["a_dn"].to_numpy())
    w_max, w_min = float(per["bmax"].mean()), float(per["bmin"].mean())
    rel = lambda v, m: float(v.std(ddof=1) / abs(m)) if len(v) > 1 and m else 0.0  # noqa: E731
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
        cfg.update(gamma_up=float(g_up.mean()), gamma_down=float(g_dn.mean()), gamma_up_dtod=float(g_up.std(ddof=1)),
                   gamma_down_dtod=float(g_dn.std(ddof=1)), mean_bound_reference=True, allow_increasing=False)
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


def config_yaml(cfg: dict[str, Any], source: str) -> str:
    """A device YAML usable as a preset (``defaults: [device_schema, _self_]``)."""
    from omegaconf import OmegaConf

    body = OmegaConf.to_yaml({**cfg, "source": source})
    return f"# source: {source}\n{body}"

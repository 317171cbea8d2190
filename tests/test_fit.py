"""Fitting device parameters to pulse-response data: round trip and bad input (``devices fit``)."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from analog_train.cli import app
from analog_train.config import make_device, to_object
from analog_train.devices.array import DeviceArray
from analog_train.devices.presets import compose_device
from configs import device

TRUE = make_device("soft_bounds", dw_min=0.05, dw_min_std=0.3, dw_min_dtod=0.2, up_down_dtod=0.1,
                  w_max=1.0, w_min=-1.0, w_max_dtod=0.2, w_min_dtod=0.2, mult_noise=False)


def simulate(cfg, n_dev=20, cycles=6, n=60, seed=0):
    """Pulse traces (cycles of n up, n down) of n_dev devices, one row per read; and the array."""
    arr = DeviceArray(cfg, (1, n_dev), torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(seed)
    signs = np.concatenate([np.ones(n), -np.ones(n)] * cycles)
    ws = [arr.weight.reshape(-1).clone()]
    for s in signs:
        arr.pulse_once(torch.full(arr.shape, float(s)), gen)
        ws.append(arr.weight.reshape(-1).clone())
    w = torch.stack(ws).numpy()
    direction = np.concatenate([["none"], np.where(signs > 0, "up", "down")])
    df = pd.DataFrame({"device_id": np.repeat(np.arange(n_dev), len(ws)), "pulse_index": np.tile(np.arange(len(ws)), n_dev),
                       "direction": np.tile(direction, n_dev), "weight": w.T.reshape(-1)})
    return arr, df


def test_soft_bounds_round_trip(tmp_path):
    """dw_min, both bounds and the c2c noise come back within 10 %, per device and in the YAML."""
    arr, df = simulate(TRUE)
    df.to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "fitted" / "device" / "mine.yaml"
    res = CliRunner().invoke(app, ["devices", "fit", str(tmp_path / "data.csv"), "--family", "soft_bounds",
                                   "--out", str(out), "--plot", str(tmp_path / "fit.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fit.png").is_file() and (tmp_path / "fit.csv").is_file()
    assert "hydra.searchpath=[file://" in res.output and "device=mine" in res.output
    fitted = compose_device(str(out))
    p = {k: v.reshape(-1).double().numpy() for k, v in arr.params.items()}
    truth = {"dw_min": max(p["a_up"].mean(), p["a_dn"].mean()), "w_max": p["bmax"].mean(), "w_min": p["bmin"].mean(),
             "dw_min_std": TRUE.dw_min_std}
    for key, value in truth.items():
        assert fitted[key] == pytest.approx(value, rel=0.1), key
    assert fitted.family == "soft_bounds" and not fitted.mult_noise
    assert fitted.w_max_dtod == pytest.approx(np.std(p["bmax"], ddof=1) / p["bmax"].mean(), rel=0.3)

    from analog_train.devices.fit import fit, load_pulse_data

    per = fit(load_pulse_data(tmp_path / "data.csv"), "soft_bounds").per_device
    per = per.assign(i=per["device_id"].astype(int)).sort_values("i")
    for name, true in (("a_up", p["a_up"]), ("a_dn", p["a_dn"]), ("bmax", p["bmax"]), ("bmin", p["bmin"])):
        np.testing.assert_allclose(per[name], true, rtol=0.1, err_msg=name)
    c2c = np.sqrt(0.5 * (per["c2c_up"] ** 2 + per["c2c_dn"] ** 2))  # per device, both directions pooled
    np.testing.assert_allclose(c2c, TRUE.dw_min_std, rtol=0.1)


# Per family, a device whose parameters the data determine: steps that change clearly over the range,
# exp_step's steps not vanishing before the hard bounds (they are what its z is scaled by).
SHAPES = {
    "soft_bounds": {}, "constant_step": {},
    "linear_step": dict(gamma_up=0.5, gamma_down=0.8, gamma_up_dtod=0.0, gamma_down_dtod=0.0),
    "pow_step": dict(pow_gamma=1.5, pow_gamma_dtod=0.0),
    "exp_step": dict(a=0.5, b=0.0, A_up=0.3, A_down=0.3, gamma_up=1.0, gamma_down=1.0),
    "piecewise_step": dict(piecewise_up=[1.6, 1.3, 1.0, 0.6, 0.2], piecewise_down=[0.2, 0.6, 1.0, 1.3, 1.6]),
}


def pulse_data(df):
    from analog_train.devices.fit import PulseData

    direction = df["direction"].map({"up": 1, "down": -1, "none": 0})
    return PulseData(df.assign(cycle=0.0, direction=direction)[["device_id", "cycle", "pulse_index", "direction",
                                                                   "weight"]])


def mean_device_steps(cfg, w):
    """Noise-free (up, down) steps of the mean device of ``cfg`` (no d2d spread) at weights ``w``."""
    quiet = {k: 0.0 for k in asdict(cfg) if k.endswith("_dtod") or k in ("dw_min_std", "write_noise_std")}
    values = {k: v for k, v in asdict(cfg).items() if k not in ("family", "conductance")}
    arr = DeviceArray(device(cfg.family, **{**values, **quiet}), (1, len(w)), torch.Generator().manual_seed(0))
    return arr.family.steps(torch.tensor(w, dtype=arr.dtype).view(1, 1, -1) + arr.ref, arr.params)


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_every_family_round_trips_within_10_percent(tmp_path, family):
    """Simulated data of a known device (12 devices, 8 cycles of 100 up and 100 down pulses): the fit
    gives back dw_min, the c2c noise, both bounds and the family's own parameters within 10 %, and the
    mean device's step-vs-weight law within 10 % of its largest step; it is not refused, and its YAML
    composes as a device of that family. (exp_step's A and gamma are not compared one by one: within
    the noise they trade off against each other, the law they give does not.)"""
    from analog_train.devices.fit import compare, config_yaml, verdict

    values = {k: v for k, v in asdict(TRUE).items() if k != "family"}
    cfg = device(family, **{**values, "mult_noise": family != "soft_bounds", **SHAPES[family]})
    arr, df = simulate(cfg, n_dev=12, cycles=8, n=100)
    result, qualities = compare(pulse_data(df), family)
    assert verdict(result, qualities) is None
    p = {k: v.reshape(-1).double().numpy() for k, v in arr.params.items()}
    truth = {"dw_min": max(p["a_up"].mean(), p["a_dn"].mean()), "dw_min_std": cfg.dw_min_std,
             "w_max": p["bmax"].mean(), "w_min": p["bmin"].mean()}
    if family != "exp_step":
        truth.update({k: v for k, v in SHAPES[family].items() if not k.endswith("_dtod")})
    for key, value in truth.items():
        assert np.asarray(result.config[key]) == pytest.approx(np.asarray(value), rel=0.1), key
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "f.yaml").write_text(config_yaml(result, "test"))
    fitted = to_object(compose_device(str(tmp_path / "device" / "f.yaml")))
    assert fitted.family == family
    w = np.linspace(0.8 * truth["w_min"], 0.8 * truth["w_max"], 9)
    for law, true in zip(mean_device_steps(fitted, w), mean_device_steps(cfg, w)):
        assert (law - true).abs().max() <= 0.1 * true.abs().max()


def soft_bounds_csv(tmp_path, n_dev=6):
    _, df = simulate(TRUE, n_dev=n_dev, cycles=2, n=120)
    df.to_csv(tmp_path / "data.csv", index=False)
    return tmp_path / "data.csv"


def fit_cli(*args):
    return CliRunner().invoke(app, ["devices", "fit", *map(str, args)])


def one_line_error(res):
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    return lines[0]


def test_a_wrong_family_is_refused_with_its_quality(tmp_path):
    """constant_step on soft-bounds data: refused, naming its R^2 and the family that fits; --force writes it."""
    csv = soft_bounds_csv(tmp_path)
    out = tmp_path / "device" / "c.yaml"
    error = one_line_error(fit_cli(csv, "--family", "constant_step", "--out", out))
    assert "constant_step fit describes these data poorly (R^2 " in error and "--family soft_bounds fits better" in error
    assert not out.exists()
    res = fit_cli(csv, "--family", "constant_step", "--out", out, "--force")
    assert res.exit_code == 0 and out.exists()


def test_a_degenerate_fit_is_refused(tmp_path):
    """exp_step on data without curvature cannot pin its scale against its A: refused, not written."""
    values = {k: v for k, v in asdict(TRUE).items() if k not in ("family", "mult_noise")}
    _, df = simulate(device("constant_step", **values), n_dev=4, cycles=2, n=120)
    df.to_csv(tmp_path / "data.csv", index=False)
    from analog_train.devices.fit import FitResult, Quality, verdict

    result = FitResult("exp_step", {"family": "exp_step", "dw_min": 4.6, "w_max": 1.0, "w_min": -1.0}, pd.DataFrame(),
                       pd.DataFrame({"step": [0.05, 0.06]}), Quality(0.01, 0.2), [])
    message = verdict(result, {"exp_step": result.quality})
    assert message.startswith("the exp_step fit is degenerate (R^2 0.200") and "dw_min" in message
    res = fit_cli(tmp_path / "data.csv", "--family", "exp_step", "--out", tmp_path / "e.yaml", "--force")
    if res.exit_code != 0:  # whatever the optimiser finds, nothing invalid is written
        assert "R^2" in one_line_error(res) and not (tmp_path / "e.yaml").exists()


def test_quality_is_printed_and_stored_and_the_hint_is_quoted(tmp_path):
    csv = soft_bounds_csv(tmp_path)
    out = tmp_path / "fitted" / "device" / "mine.yaml"
    res = fit_cli(csv, "--out", out, "--preset", "reram")
    assert res.exit_code == 0, res.output
    table = res.output.splitlines()[1:7]
    assert len(table) == 6 and table[0].startswith("  * soft_bounds") and all("R^2 " in ln for ln in table)
    text = out.read_text()
    assert "# fit quality (soft_bounds): R^2 " in text and "residual RMS" in compose_device(str(out)).source
    hint = next(ln for ln in res.output.splitlines() if ln.startswith("use it in a run: "))
    assert hint == f"use it in a run: analog-train 'hydra.searchpath=[file://{out.parent.parent.resolve()}]' device=mine"
    from analog_train.config import compose_config

    cfg = compose_config([f"hydra.searchpath=[file://{out.parent.parent}]", "device=mine", "algo=agad"])
    assert cfg.device_preset == "reram" and cfg.algo.in_chop_prob == 0.02  # --preset: reram's algorithm settings


def test_piecewise_nodes_stay_non_negative(tmp_path):
    """Soft-bounds steps vanish at the bounds: the piecewise fit's end nodes are 0 at worst, and its YAML composes."""
    csv = soft_bounds_csv(tmp_path)
    out = tmp_path / "device" / "p.yaml"
    res = fit_cli(csv, "--family", "piecewise_step", "--out", out, "--force")
    assert res.exit_code == 0, res.output
    fitted = compose_device(str(out))
    assert min(fitted.piecewise_up) >= 0 and min(fitted.piecewise_down) >= 0


def test_repeated_measurements_in_a_cycle_column(tmp_path):
    """Cycles restart pulse_index; without a cycle column a repeat is named as the likely cause."""
    from analog_train.devices.fit import fit, load_pulse_data

    _, df = simulate(TRUE, n_dev=3, cycles=2, n=120)
    twice = pd.concat([df.assign(cycle=0), df.assign(cycle=1)], ignore_index=True)
    twice.to_csv(tmp_path / "cycles.csv", index=False)
    once = fit(load_pulse_data(_write(tmp_path / "once.csv", df)), "soft_bounds")
    both = fit(load_pulse_data(tmp_path / "cycles.csv"), "soft_bounds")
    assert len(both.steps) == 2 * len(once.steps)
    assert both.config["dw_min"] == pytest.approx(once.config["dw_min"], rel=1e-4)  # the same data twice
    twice.drop(columns="cycle").to_csv(tmp_path / "repeat.csv", index=False)
    error = one_line_error(fit_cli(tmp_path / "repeat.csv"))
    assert "duplicate pulse_index" in error and "cycle column" in error


def _write(path, df):
    df.to_csv(path, index=False)
    return path


def test_conductance_data_keep_their_scale(tmp_path):
    """Given conductances, the weights are normalised and the map back is stored: G = offset + per_weight * w."""
    from analog_train.devices.fit import load_pulse_data

    _, df = simulate(TRUE, n_dev=4, cycles=2, n=120)
    g = 5e-6 + 2e-6 * df["weight"]
    _write(tmp_path / "g.csv", df.drop(columns="weight").assign(conductance=g))
    data = load_pulse_data(tmp_path / "g.csv")
    scale = data.conductance
    np.testing.assert_allclose(scale["offset"] + scale["per_weight"] * data.frame["weight"], g, rtol=1e-6)
    out = tmp_path / "device" / "g.yaml"
    assert fit_cli(tmp_path / "g.csv", "--out", out).exit_code == 0
    stored = compose_device(str(out)).conductance
    assert stored.offset == pytest.approx(scale["offset"], rel=1e-6)
    assert stored.per_weight == pytest.approx(scale["per_weight"], rel=1e-6)


def test_one_device_is_enough_with_a_warning(tmp_path):
    _, df = simulate(TRUE, n_dev=1, cycles=2, n=120)
    out = tmp_path / "device" / "one.yaml"
    res = fit_cli(_write(tmp_path / "one.csv", df), "--out", out)
    assert res.exit_code == 0, res.output
    assert "warning: one device: its device-to-device spreads (*_dtod) are set to 0" in res.output
    fitted = compose_device(str(out))
    assert fitted.dw_min_dtod == fitted.w_max_dtod == fitted.up_down_dtod == 0.0


def _good():
    _, df = simulate(TRUE, n_dev=2, cycles=1, n=20)
    return df


@pytest.mark.parametrize("mutate,expect", [
    (lambda df: df.drop(columns="pulse_index"), "pulse_index"),
    (lambda df: df.drop(columns="weight"), "weight or conductance"),
    (lambda df: df.astype({"weight": object}).assign(weight=lambda d: d["weight"].where(d.index != 5, "abc")),
     "line 7, column weight"),
    (lambda df: df.assign(direction=lambda d: d["direction"].where(d.index != 3, "sideways")), "line 5, column direction"),
    (lambda df: df.astype({"pulse_index": float}).assign(pulse_index=lambda d: d["pulse_index"].where(d.index != 2, 2.5)),
     "line 4, column pulse_index"),
    (lambda df: df[df["pulse_index"] < 15], "need at least 10"),
    (lambda df: df.iloc[:0], "no data rows"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, mutate, expect):
    mutate(_good()).to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "out" / "dev.yaml"
    res = CliRunner().invoke(app, ["devices", "fit", str(tmp_path / "bad.csv"), "--out", str(out),
                                   "--plot", str(tmp_path / "out" / "p.png")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], res.output
    assert not (tmp_path / "out").exists()

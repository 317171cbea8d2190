"""Fitting device parameters to pulse-response data: round trip and bad input (``devices fit``)."""

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from analog_train.cli import app
from analog_train.config import make_device
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


@pytest.mark.parametrize("family", ["linear_step", "constant_step", "piecewise_step", "pow_step", "exp_step"])
def test_other_families_fit_and_compose(tmp_path, family):
    """Every family's fit writes a YAML that composes and validates; step scale and noise roughly right."""
    from dataclasses import asdict

    values = {k: v for k, v in asdict(TRUE).items() if k != "family"}
    cfg = device(family, **{**values, "mult_noise": True, "gamma_up": 0.3, "gamma_down": 0.5, "pow_gamma": 1.5})
    _, df = simulate(cfg, n_dev=8, cycles=2, n=300)
    df.to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "device" / "f.yaml"
    res = CliRunner().invoke(app, ["devices", "fit", str(tmp_path / "data.csv"), "--family", family, "--out", str(out)])
    assert res.exit_code == 0, res.output
    fitted = compose_device(str(out))
    assert fitted.family == family
    if family != "exp_step":  # exp_step: the scale trades off against A at these parameters
        assert fitted.dw_min == pytest.approx(TRUE.dw_min, rel=0.3)
        assert fitted.dw_min_std == pytest.approx(TRUE.dw_min_std, rel=0.2)


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

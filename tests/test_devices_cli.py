"""``analog-train devices list/show/plot``: presets, overrides, errors, Fig. 2 traces and files."""

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from analog_train.cli import app
from analog_train.devices.presets import PRESET_DIR, list_presets

PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
LINEAR = """# source: a test device with an interior SP
family: linear_step
n_states: 40
w_max: 1.0
w_min: -1.0
gamma_up: 1.0
gamma_down: 1.0
mult_noise: true
"""


def invoke(*args):
    return CliRunner().invoke(app, ["devices", *map(str, args)])


def test_list_has_every_preset_with_its_numbers_and_units():
    res = invoke("list", "--devices", "200")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = lines[0].split()
    assert header[:8] == ["preset", "family", "granularity", "n_states", "up_down", "asym_w0", "sp_std", "c2c"]
    assert lines[1].split()[:2] == ["[weight]", "[rel.]"]  # units under the header
    table = lines[2:lines.index("")]
    rows = {ln.split()[0]: ln.split() for ln in table}
    assert sorted(rows) == PRESETS == list_presets()
    sb = rows["softbounds"]
    assert sb[1] == "soft_bounds" and float(sb[2]) == pytest.approx(0.05) and float(sb[3]) == pytest.approx(40)
    assert float(sb[7]) == pytest.approx(0.3) and "Rasch" in " ".join(sb[8:])
    assert "  soft_bounds: n_states, mult_noise, slope_up_dtod, slope_down_dtod" in lines  # the family's own keys


def test_list_shows_the_device_not_its_algorithm_presets():
    """reram's row is the bare preset: the SP subtraction of its TT presets does not zero its SP spread."""
    from analog_train.config import compose_config
    from analog_train.devices.parameters import resolve
    from analog_train.devices.response import array_summary

    res = invoke("list", "--devices", "200")
    row = next(ln.split() for ln in res.output.splitlines() if ln.split()[:1] == ["reram"])
    bare = array_summary(resolve(compose_config(["algo=sgd", "device=reram"]).device), 200, 0)
    assert float(row[5]) == pytest.approx(bare["asymmetry"], rel=1e-3)
    assert float(row[6]) == pytest.approx(bare["sp_std"], rel=1e-3) and bare["sp_std"] > 0.005


def test_show_resolves_overrides_and_files(tmp_path):
    res = invoke("show", "softbounds", "w_max=1.2", "device.n_states=20")
    assert res.exit_code == 0, res.output
    cfg = OmegaConf.create(res.output)
    assert cfg.w_max == 1.2 and cfg.n_states == 20 and cfg.family == "soft_bounds"
    assert "# granularity: 0.11" in res.output  # (1.2 + 1) / 20
    path = tmp_path / "lin.yaml"
    path.write_text(LINEAR)
    res = invoke("show", path, "gamma_up=0.25")
    assert res.exit_code == 0, res.output
    assert OmegaConf.create(res.output).gamma_up == 0.25


@pytest.mark.parametrize("args,expect", [
    (["show", "no_such_device"], "presets: " + ", ".join(PRESETS)),
    (["plot", "no_such_device"], "presets: " + ", ".join(PRESETS)),
    (["show", "softbounds", "w_maxx=1"], "device.w_maxx"),
    (["show", "softbounds", "w_max=-2"], "device.w_min"),
    (["show", "missing.yaml"], "not found"),
])
def test_errors_are_one_line_exit_2(args, expect):
    res = invoke(*args)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], res.output


def test_plot_writes_files_and_alternating_pulses_reach_each_sp(tmp_path):
    lin = tmp_path / "lin.yaml"
    lin.write_text(LINEAR)
    out = tmp_path / "fig" / "response"
    res = invoke("plot", "softbounds", lin, "--pulses", 200, "--devices", 4, "--out", out, "--seed", 1)
    assert res.exit_code == 0, res.output
    for suffix in (".png", ".pdf", ".csv"):
        assert out.with_suffix(suffix).stat().st_size > 0
    df = pd.read_csv(out.with_suffix(".csv"))
    assert set(df["preset"]) == {"softbounds", "lin"}
    counts = df[(df["preset"] == "softbounds") & (df["device_id"] == 0)]["phase"].value_counts()
    assert counts.to_dict() == {"alternating": 400, "up": 200, "down": 200, "initial": 1}
    alt = df[df["phase"] == "alternating"]
    end = alt.groupby(["preset", "device_id"]).agg(w=("weight", lambda w: w.iloc[-200:].mean()), sp=("sp", "first"))
    # Around its SP a device contracts by c ~ 2 dw_min / w_max = 0.1 per up/down pair, with c2c noise
    # s = dw_min_std * dw_min = 0.015 per pulse: stationary std s sqrt(2 / (2c)) ~ 0.047, and the
    # mean of the last 100 pairs has std ~ 0.047 sqrt(2 / (100 c)) ~ 0.021; allow about 4.7 of those.
    tol = 0.3 * 0.05 * (2 / (2 * 0.1)) ** 0.5 * (2 / (100 * 0.1)) ** 0.5 * 4.7
    assert (end["w"] - end["sp"]).abs().max() < tol, end
    assert end.loc["softbounds", "sp"].std() > 2 * tol  # distinct SPs: each device reaches its own
    ups = df[df["phase"] == "up"]
    assert (ups["step_up"] >= 0).all() and (ups["step_down"] >= 0).all()


def test_default_ramp_saturates_each_device():
    """Without --pulses the ramp has about 1.5 pulses per state (100 at least, 3000 at most)."""
    from analog_train.devices.response import auto_pulses
    from analog_train.devices.presets import compose_device

    assert auto_pulses(compose_device("softbounds", [])) == 100  # 40 states
    assert auto_pulses(compose_device("reram", [])) == 1500  # 1000 states
    assert auto_pulses(compose_device("idealized", [])) == 3000  # 10000 states, capped


def test_plot_every_preset_runs(tmp_path):
    res = invoke("plot", *PRESETS, "--pulses", 5, "--devices", 2, "--out", tmp_path / "all")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "all.csv")
    assert sorted(set(df["preset"])) == PRESETS and df["weight"].notna().all()


def test_devices_is_a_subcommand():
    from analog_train.cli import SUBCOMMANDS

    assert "devices" in SUBCOMMANDS
    assert Path(PRESET_DIR).is_dir()

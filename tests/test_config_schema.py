"""The config schemas: one per device family and algorithm, registered once; algorithm settings that follow
the device's identity (the preset it derives from), not its file name; the CLI around them."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from analog_train import cli
from analog_train.config import (
    ALGORITHMS, DEVICE_FAMILIES, EXPERIMENTS, ConfigError, compose_config, load_algo_yaml, make_algo, make_device,
    to_object,
)
from analog_train.config.algorithms import TRANSFER_ALGORITHMS

SCRIPT = str(Path(sys.executable).parent / "analog-train")


@pytest.fixture
def device_dir(tmp_path):
    """A folder with user device YAMLs: one that only inherits reram, one built from scratch."""
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "myreram.yaml").write_text("defaults:\n  - reram\n  - _self_\ndw_min: 0.003\n")
    (tmp_path / "device" / "scratch.yaml").write_text(
        "family: linear_step\nsource: a device of my own\ndw_min: 0.002\nw_max: 1.0\nw_min: -1.0\ngamma_up: 0.2\n")
    return tmp_path


def compose_with(device_dir, *overrides):
    return compose_config([f"hydra.searchpath=[file://{device_dir}]", *overrides])


@pytest.mark.parametrize("algo", TRANSFER_ALGORITHMS)
def test_a_device_that_inherits_reram_trains_exactly_like_reram(device_dir, algo):
    """Same algorithm, update and SP-subtraction settings as device=reram; only the device's own values differ."""
    mine = compose_with(device_dir, f"algo={algo}", "device=myreram")
    reram = compose_config([f"algo={algo}", "device=reram"])
    assert mine.device_preset == reram.device_preset == "reram"
    assert to_object(mine.algo) == to_object(reram.algo)
    assert to_object(mine["update"]) == to_object(reram["update"])
    assert mine.device.subtract_symmetry_point == reram.device.subtract_symmetry_point
    assert mine.device.dw_min == 0.003 and reram.device.dw_min == 0.002
    if algo == "agad":
        assert (mine.algo.in_chop_prob, mine.device.subtract_symmetry_point) == (0.02, True)  # AGADReRamSBPreset


def test_a_device_from_scratch_gets_the_generic_settings_and_one_log_line(device_dir, caplog):
    caplog.set_level(logging.INFO, logger="analog_train.config.check")
    cfg = compose_with(device_dir, "algo=agad", "device=scratch")
    assert cfg.device_preset == "generic"
    generic = make_algo("agad", **{k: v for k, v in load_algo_yaml("agad").items() if k != "name"})
    assert to_object(cfg.algo) == generic  # conf/algo/agad.yaml as it is
    notes = [r.getMessage() for r in caplog.records if "generic settings" in r.getMessage()]
    assert len(notes) == 1 and "a device of my own" in notes[0] and "device_preset=" in notes[0]
    caplog.clear()
    compose_with(device_dir, "algo=sgd", "device=scratch")  # in-memory SGD has no presets: nothing to say
    assert not [r for r in caplog.records if "generic settings" in r.getMessage()]


def test_overrides_still_win_over_the_algorithm_presets(device_dir):
    cfg = compose_with(device_dir, "algo=agad", "device=myreram", "algo.in_chop_prob=0.05", "update.desired_bl=7")
    assert (cfg.algo.in_chop_prob, cfg["update"].desired_bl) == (0.05, 7)
    # A device of one's own may name its preset on the command line instead of in its YAML.
    cfg = compose_with(device_dir, "algo=agad", "device=scratch", "device_preset=ecram")
    assert (cfg.algo.auto_granularity, cfg.algo.tail_weightening) == (750, 50)  # AGADEcRamPreset
    # An experiment's own settings win over the presets of its device too.
    cfg = compose_config(["experiment=fc_mnist", "algo=ttv2"])
    assert cfg.device_preset == "softbounds" and cfg.algo.fast_lr == 1.0 and cfg.device.subtract_symmetry_point


def test_a_key_of_another_family_or_algorithm_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"^device\.pow_gamma: not a key of the soft_bounds family"):
        compose_config(["device=reram", "device.pow_gamma=2"])
    with pytest.raises(ConfigError, match=r"^algo\.fast_lr: not a key of algo=sgd"):
        compose_config(["algo=sgd", "algo.fast_lr=0.1"])
    with pytest.raises(ConfigError, match=r"did you mean device\.n_states\?"):
        compose_config(["device.n_stats=20"])


def test_families_and_algorithms_are_registered_once_with_valid_defaults():
    from analog_train.devices.families import FAMILIES
    from analog_train.runner.experiment import EXPERIMENTS as RUNNERS

    assert set(DEVICE_FAMILIES) == set(FAMILIES)  # every schema has its physics and back
    assert set(EXPERIMENTS) == set(RUNNERS)
    for family in DEVICE_FAMILIES:
        assert make_device(family).family == family  # the schema defaults pass its own rules
    for name in ALGORITHMS:
        assert make_algo(name).name == name


def test_a_plain_run_has_no_experiment_settings(monkeypatch, capsys):
    """`--cfg job` validates and prints the typed config: every key of the device's family, no experiment block."""
    monkeypatch.setattr(sys, "argv", ["analog-train", "--cfg", "job", "algo=sgd"])
    cli.main()
    out = capsys.readouterr().out
    assert "experiment: null" in out and "experiment:\n" not in out
    assert "dw_min_dtod_log_normal: false" in out  # a schema default reram.yaml does not list


def test_help_lists_the_subcommands_and_typos_get_a_suggestion(tmp_path):
    proc = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    for command in ("bench", "cost", "devices", "figures", "plot", "report"):
        assert f"\n  {command} " in proc.stdout
    assert "== Configuration groups ==" in proc.stdout and "_schema" not in proc.stdout
    proc = subprocess.run([SCRIPT, "device", "list"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: 'device' is not a command; did you mean 'devices'? "
        "(commands: bench, cost, devices, figures, plot, report)"]

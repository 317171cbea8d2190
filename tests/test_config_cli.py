"""Config composition, range validation, and the installed console script end to end."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analog_train.config import CONF_DIR, ConfigError, compose_config, validate

SCRIPT = shutil.which("analog-train", path=str(Path(sys.executable).parent)) or shutil.which("analog-train")
GROUPS = {g: sorted(p.stem for p in (Path(CONF_DIR) / g).glob("*.yaml")) for g in ("algo", "device", "model", "data", "io")}




@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes_and_validates(group, option):
    # Devices are checked under in-memory SGD, which every preset supports (the one-sided pcm
    # cell cannot be the A array of the default AGAD: see test_unusable_combination_says_what_works);
    # the text corpus under the model that reads text (every model x data pair: tests/test_models.py).
    base = {"device": ["algo=sgd"], "data": ["model=lstm"] if option == "war_and_peace" else []}.get(group, [])
    validate(compose_config([*base, f"{group}={option}"]))


def test_unusable_combination_says_what_works():
    with pytest.raises(ConfigError, match="sgd") as err:
        validate(compose_config(["algo=agad", "device=pcm"]))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override,key", [
    ("device.n_states=0", "device.n_states"),
    ("train.lr=-0.1", "train.lr"),
    ("device.w_min=2.0", "device.w_min"),
    ("data.batch_size=0", "data.batch_size"),
    ("update.engine=turbo", "update.engine"),
    ("io.out_noise=-1", "io.out_noise"),
])
def test_invalid_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_config([override]))


def test_typo_in_key_fails_at_compose():
    with pytest.raises(Exception, match="n_stats"):
        compose_config(["device.n_stats=3"])


def run_cli(tmp_path, *args):
    assert SCRIPT, "the analog-train console script is not installed"
    return subprocess.run([SCRIPT, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_cli_invalid_value_exits_with_one_line(tmp_path):
    proc = run_cli(tmp_path, "device.n_states=0", "data=digits")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "device.n_states" in lines[0]
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.csv"))


def test_cli_unknown_option_lists_options(tmp_path):
    """Hydra's own errors end like ours: one line, exit 2, the options listed."""
    proc = run_cli(tmp_path, "algo=sdg")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "algo=sdg: no such option; did you mean algo=sgd?" in lines[0] and "ttv2" in lines[0]


def test_end_to_end_run_is_deterministic(tmp_path):
    """Two runs with the same seeds write the same metrics; a summary says completed."""
    args = ["algo=sgd", "data=digits", "train.epochs=2", "train.lr=0.5", "data.train_subset=400"]
    runs = []
    for name in ("a", "b"):
        proc = run_cli(tmp_path, *args, f"hydra.run.dir={tmp_path / name}")
        assert proc.returncode == 0, proc.stderr
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs_completed"] == 2
        assert summary["endurance"]["W"]["max_pulses_per_sample"] > 0
        runs.append(pd.read_csv(tmp_path / name / "metrics.csv"))
    assert list(runs[0].columns[:6]) == ["epoch", "replica", "samples_seen", "train_loss", "test_loss", "test_error"]
    pd.testing.assert_frame_equal(runs[0].drop(columns=["seconds", "samples_per_s"]),
                                  runs[1].drop(columns=["seconds", "samples_per_s"]))


def test_defaults_are_the_headline_run():
    """`analog-train` alone is AGAD on the ReRAM preset, with aihwkit's AGADReRamSBPreset values."""
    cfg = compose_config()
    assert (cfg.algo.name, cfg.model.name, cfg.data.name) == ("agad", "fc", "mnist")
    assert cfg.device.source.startswith("aihwkit ReRamSBPresetDevice")
    assert cfg.algo.in_chop_prob == 0.02 and cfg.algo.tail_weightening == 5
    assert cfg.device.subtract_symmetry_point  # from conf/algo_device/agad_reram.yaml
    assert not compose_config(["algo=sgd"]).device.subtract_symmetry_point  # the bare device preset


def test_headline_command_runs_end_to_end(tmp_path):
    out = tmp_path / "agad"
    proc = run_cli(tmp_path, "algo=agad", "device=reram", "data=digits", "train.epochs=1", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["endurance"]["A"]["max_pulses_per_sample"] > 0


def test_multirun_writes_results_table(tmp_path):
    """A sweep leaves one row per job (its overrides and outcome) in <sweep dir>/results.csv."""
    sweep = tmp_path / "sweep"
    proc = run_cli(tmp_path, "-m", "algo=fp,sgd", "data=digits", "train.epochs=1", "progress=false",
                   f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    results = pd.read_csv(sweep / "results.csv").sort_values("algo")
    assert list(results["algo"]) == ["fp", "sgd"]
    assert (results["status"] == "completed").all() and (results["test_accuracy"] > 0).all()
    assert results.loc[results["algo"] == "sgd", "W_max_pulses_per_sample"].item() > 0


def test_cost_subcommand_prints_table_1(tmp_path):
    proc = run_cli(tmp_path, "cost")
    assert proc.returncode == 0
    for value in ("30.9", "56.3", "62.1", "3,024.5"):
        assert value in proc.stdout


def test_sigterm_leaves_interrupted_summary(tmp_path):
    """A killed run keeps its completed epochs and says interrupted."""
    import signal
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([SCRIPT, "algo=sgd", "data=digits", "train.epochs=1000", f"hydra.run.dir={out}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["epochs_completed"] >= 2
    assert len(pd.read_csv(out / "metrics.csv")) == summary["epochs_completed"]


def test_divergence_is_recorded(tmp_path):
    """An absurd learning rate on a ReLU network overflows: status diverged, exit code 3."""
    out = tmp_path / "run"
    proc = run_cli(tmp_path, "algo=fp", "data=digits", "model.activation=relu", "train.lr=1e30", "train.epochs=3", f"hydra.run.dir={out}")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"

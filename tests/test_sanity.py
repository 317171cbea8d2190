"""Sanity warnings of a finished run (``runner/sanity.py``): in ``summary.json`` and in the run's log."""

import json
import subprocess
import sys
from pathlib import Path

from analog_train.config import compose_config
from analog_train.runner.sanity import near_chance
from analog_train.runner.train import train

SCRIPT = str(Path(sys.executable).parent / "analog-train")
DIGITS = ["data=digits", "progress=false", "threads=1"]


def test_a_weight_array_without_pulses_is_a_warning_in_summary_and_log(tmp_path):
    """AGAD on 200 digits: its first chopper period (50 reads of each of 64 columns) is longer than the
    run, so C is never written; the run completes, and says so."""
    out = tmp_path / "run"
    proc = subprocess.run([SCRIPT, "algo=agad", *DIGITS, "data.train_subset=200", "train.epochs=1",
                           f"hydra.run.dir={out}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    silent = [w for w in summary["warnings"] if "array C received no pulses" in w]
    assert len(silent) == 3 and "AGAD writes C only after one chopper period" in silent[0]  # every layer
    log = "".join(p.read_text() for p in out.glob("*.log"))
    assert "array C received no pulses" in log and "WARNING" in log


def test_chance_accuracy_is_a_warning():
    """10 classes, 360 test samples: chance is 10 % +- 1.6 %; 13 % is within 3 standard deviations, 20 % is not."""
    assert "within noise of chance" in near_chance(13.0, 10, 360)[0]
    assert near_chance(20.0, 10, 360) == []


def test_a_learning_rate_past_the_device_is_a_warning_and_a_good_run_has_none(tmp_path):
    """In-memory SGD on a 10-state device at lr 20: a sample moves the output layer's weights by several
    states; on the 10,000-state idealized device at lr 0.2 by a fraction of a percent of the range."""
    base = ["algo=sgd", *DIGITS, "data.train_subset=300", "train.epochs=1", "train.lr_schedule=constant"]
    coarse = train(compose_config([*base, "device=softbounds", "device.n_states=10", "train.lr=20"]), tmp_path / "a")
    assert any("train.lr=20 is past the stability of the device in analog layer 2" in w for w in coarse.summary["warnings"])
    fine = train(compose_config([*base, "device=idealized", "io=perfect", "train.epochs=5", "train.lr=0.2",
                                 "data.train_subset=null"]), tmp_path / "b")
    assert fine.summary["test_accuracy"] > 50 and fine.summary["warnings"] == []

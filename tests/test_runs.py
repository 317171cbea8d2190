"""Single runs tell the truth: statuses and exit codes, one directory per run, the job log, resume.

Each test reproduces a fault found by running the tool as a user would (issue 14): a crash recorded
as completed, two runs mixing their files, a silent job log, a killed run starting over.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from analog_train.runner import checkpoint
from tests.helpers import run_cli, start_cli, summary, wait_for

FAST = ["data=digits", "threads=1", "progress=false"]
SMALL = ["data.train_subset=200", "data.test_subset=100"]  # epochs of a fraction of a second
SAME = ["epoch", "replica", "samples_seen", "train_loss", "test_loss", "test_error", "lr"]


def test_crash_is_failed_with_exit_code_and_traceback_in_the_job_log(tmp_path: Path) -> None:
    """``train.lr=1e39`` overflows in the optimizer: a crash, not a completed run."""
    out = tmp_path / "run"
    proc = run_cli(tmp_path, "algo=fp", *FAST, "train.epochs=1", "train.lr=1e39", f"hydra.run.dir={out}")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    record = summary(out)
    assert record["status"] == "failed"
    assert record["error"]["type"] == "RuntimeError" and "overflow" in record["error"]["message"]
    assert "Traceback" not in proc.stdout + proc.stderr  # the console gets one line ...
    log = (out / "analog-train.log").read_text()
    assert "Traceback (most recent call last)" in log and "param.add_" in log  # ... the job log the traceback
    failed = [ln for ln in proc.stdout.splitlines() if "failed:" in ln]
    assert len(failed) == 1 and "RuntimeError" in failed[0] and str(out / "analog-train.log") in failed[0]


def test_runs_started_together_keep_separate_consistent_directories(tmp_path: Path) -> None:
    procs = [start_cli(tmp_path, "algo=fp", *FAST, "train.epochs=1", f"seed={seed}") for seed in (0, 1)]
    for proc in procs:
        proc.wait(timeout=300)
        assert proc.returncode == 0, proc.stderr.read()
    runs = sorted((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 2
    for run in runs:
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        seed = int(next(o for o in overrides if o.startswith("seed=")).split("=")[1])
        record = summary(run)
        assert record["seeds"]["seed"] == seed and record["config"]["seed"] == seed
        lines = (run / "metrics.csv").read_text().splitlines()
        assert len(lines) == 2 and lines[0].startswith("epoch,")


def test_a_taken_run_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = run_cli(tmp_path, "algo=fp", *FAST, "train.epochs=1", "seed=0", f"hydra.run.dir={shared}")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in (shared / ".hydra").iterdir()}
    before["summary.json"] = (shared / "summary.json").read_bytes()
    second = run_cli(tmp_path, "algo=fp", *FAST, "train.epochs=1", "seed=1", f"hydra.run.dir={shared}")
    assert second.returncode == 2
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "completed run" in lines[0] and str(shared) in lines[0]
    after = {p.name: p.read_bytes() for p in (shared / ".hydra").iterdir()}
    after["summary.json"] = (shared / "summary.json").read_bytes()
    assert after == before


def test_a_live_run_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "live"
    live = start_cli(tmp_path, "algo=fp", *FAST, "train.epochs=100000", f"hydra.run.dir={shared}")
    try:
        wait_for(lambda: (shared / "checkpoint.pt").is_file())
        proc = run_cli(tmp_path, "algo=fp", *FAST, "train.epochs=1", f"hydra.run.dir={shared}")
        assert proc.returncode == 2
        assert f"in use by a running analog-train (pid {live.pid})" in proc.stderr
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=60)
    assert live.returncode == 130 and summary(shared)["status"] == "interrupted"


def test_job_log_has_a_line_per_epoch(tmp_path: Path) -> None:
    """The default run (AGAD on ReRAM; here on digits for two epochs) reports as it goes."""
    out = tmp_path / "run"
    proc = run_cli(tmp_path, "data=digits", *SMALL, "train.epochs=2", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    log = (out / "analog-train.log").read_text().splitlines()
    epochs = [ln for ln in log if " - epoch " in ln]
    assert [ln.split(" - epoch ")[1].split(":")[0] for ln in epochs] == ["1/2", "2/2"]
    for line in epochs:
        for part in ("train loss", "test loss", "test error", "samples/s", "A pulses/device", "C pulses/device"):
            assert part in line
    assert all(choice in log[0] for choice in ("algo=agad", "device=reram", "model=fc", "data=digits"))
    assert "completed: test accuracy" in log[-1]
    record = summary(out)
    assert record["choices"]["device"] == "reram" and record["compile_seconds"] >= 0
    # optional groups count where a config was loaded: agad_reram.yaml exists, fc_agad.yaml does not
    assert record["choices"]["algo_device"] == "agad_reram" and "model_algo" not in record["choices"]
    assert "algo_device=agad_reram" in log[0] and "model_algo=" not in log[0]


@pytest.mark.parametrize("algo", ["sgd", "agad"])
def test_resume_of_a_killed_run_gives_the_uninterrupted_metrics(tmp_path: Path, algo: str) -> None:
    """Killed (SIGKILL: no summary, no clean-up) after its first checkpoint, resumed: the same numbers."""
    args = [f"algo={algo}", *FAST, *SMALL]
    ref = tmp_path / "ref"
    proc = run_cli(tmp_path, *args, "train.epochs=4", f"hydra.run.dir={ref}")
    assert proc.returncode == 0, proc.stderr
    killed = tmp_path / "killed"
    victim = start_cli(tmp_path, *args, "train.epochs=1000", f"hydra.run.dir={killed}")
    wait_for(lambda: (killed / "checkpoint.pt").is_file())
    victim.kill()
    victim.wait(timeout=60)
    assert not (killed / "summary.json").exists()
    proc = run_cli(tmp_path, f"resume={killed}", "train.epochs=4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = summary(killed)
    assert record["status"] == "completed" and 1 <= record["resumed_after_epochs"][0] < 4
    pd.testing.assert_frame_equal(pd.read_csv(ref / "metrics.csv")[SAME], pd.read_csv(killed / "metrics.csv")[SAME])
    assert record["final"] == summary(ref)["final"]
    assert record["endurance"] == summary(ref)["endurance"]


def test_resume_refuses_what_it_cannot_continue(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli(tmp_path, "algo=fp", *FAST, "train.epochs=1", f"hydra.run.dir={run}").returncode == 0
    done = run_cli(tmp_path, f"resume={run}")
    assert done.returncode == 2 and "completed its 1 epochs" in done.stderr
    other = run_cli(tmp_path, f"resume={run}", "train.epochs=2", "train.lr=0.5")
    assert other.returncode == 2 and "train.lr=0.5" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    # the error names the saved value to give (what a run made before a default changed needs)
    keep = re.search(r"give (train\.lr=\S+) to continue it as it was made", other.stderr)
    assert keep, other.stderr
    more = run_cli(tmp_path, f"resume={run}", "train.epochs=2", keep.group(1))
    assert more.returncode == 0, more.stderr
    assert summary(run)["epochs_completed"] == 2 and len(pd.read_csv(run / "metrics.csv")) == 2
    nothing = run_cli(tmp_path, f"resume={tmp_path / 'nowhere'}")
    assert nothing.returncode == 2 and "not a run directory" in nothing.stderr


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that dies half-way (a kill, a full disk) leaves the previous checkpoint whole."""
    path = tmp_path / checkpoint.CHECKPOINT
    checkpoint.write_atomically(path, {"format": 1, "epoch": 1, "x": torch.arange(1000)})

    def dies_half_way(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt("SIGKILL stand-in")

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.write_atomically(path, {"format": 1, "epoch": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.CHECKPOINT]


def test_sigterm_ends_an_experiment_with_what_it_computed(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    proc = start_cli(tmp_path, "experiment=toy_mechanism", "experiment.samples=1000000", "threads=1",
                     f"hydra.run.dir={out}")
    wait_for(lambda: "experiment toy_mechanism in" in _text(out / "analog-train.log"))
    time.sleep(2)  # into the sample loop
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    record = summary(out)
    assert record["status"] == "interrupted" and "SIGTERM" in record["reason"]
    traces = pd.read_csv(out / "toy_mechanism.csv")
    assert 0 < len(traces) < 1000000 and list(traces.columns[:3]) == ["algo", "reference_offset", "sample"]


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def test_an_invalid_value_of_a_single_run_is_one_line_before_anything_is_written(tmp_path: Path) -> None:
    """A single run is checked before Hydra starts: one line, exit 2, no run directory (a sweep's
    invalid point instead becomes a failed job: test_sweeps.py)."""
    out = tmp_path / "run"
    proc = run_cli(tmp_path, "device.n_states=0", "data=digits", f"hydra.run.dir={out}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "device.n_states=0" in lines[0]
    assert not out.exists()


def test_signals_within_a_moment_are_one_request_and_a_later_one_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C reaches every process of a sweep and the sweep passes it on: that must not count twice."""
    import os

    from analog_train.runner import signals

    with signals.StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # the same request, passed on
        assert stop.requested and signals.requested()
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            stop.check()
        monkeypatch.setattr(signals, "SAME_REQUEST_S", 0.0)
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode boundary
    assert not signals.requested()


def test_the_hydra_app_is_named_analog_train(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "--help")
    assert proc.returncode == 0 and "analog-train is powered by Hydra" in proc.stdout

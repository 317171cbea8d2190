"""Sweeps survive: failed points are rows, signals stop every job, results.csv at any end, re-runs resume.

Each test reproduces a fault found by running sweeps as a user would (issue 14): one invalid point
aborted the whole sweep, a crash left no results.csv, SIGTERM to a joblib sweep orphaned its
workers, Ctrl-C on a sequential sweep skipped only the current job, a re-run recomputed everything.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from omegaconf import OmegaConf

from analog_train.runner.sweep_control import JOBLIB_LAUNCHER, threads_per_job
from tests.helpers import alive, run_cli, start_cli, summary, wait_for

FAST = ["data=digits", "data.train_subset=200", "data.test_subset=100", "progress=false"]


def test_invalid_and_crashing_points_are_failed_rows_and_the_others_run(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli(tmp_path, "-m", "algo=sgd,agad,fp", "device=pcm", "train.lr=0.1,1e39", *FAST, "train.epochs=1",
                   "threads=1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # a job failed
    results = pd.read_csv(sweep / "results.csv")
    assert results["job"].tolist() == list(range(6)) and results["job"].dtype.kind == "i"
    status = dict(zip(zip(results["algo"], results["train.lr"]), results["status"]))
    assert status == {("sgd", 0.1): "completed", ("sgd", 1e39): "failed", ("agad", 0.1): "failed",
                      ("agad", 1e39): "failed", ("fp", 0.1): "completed", ("fp", 1e39): "failed"}
    errors = dict(zip(results["job"], results["error_type"]))
    assert errors[1] == "RuntimeError" and errors[2] == "ConfigError"  # a crash, an invalid combination
    assert "one-sided" in results.loc[2, "reason"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [str(j) for j in range(6)]  # short names
    assert summary(sweep / "0")["overrides"][:3] == ["algo=sgd", "device=pcm", "train.lr=0.1"]
    assert results.loc[0, "overrides"].startswith("algo=sgd device=pcm train.lr=0.1 data=digits")


def test_results_table_columns(tmp_path: Path) -> None:
    """Group choices even when default (device), overrides, rounded metrics, compile time apart."""
    sweep = tmp_path / "sweep"
    proc = run_cli(tmp_path, "-m", "algo=fp,sgd", *FAST, "train.epochs=1", "threads=1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    results = pd.read_csv(sweep / "results.csv")
    assert results["device"].tolist() == ["reram", "reram"] and results["model"].tolist() == ["fc", "fc"]
    assert results["overrides"][0].startswith("algo=fp data=digits")
    assert "algo_device" not in results and "model_algo" not in results  # no preset for fp or sgd on reram
    for column in ("compile_seconds", "train_seconds", "wall_seconds", "test_accuracy", "final_test_loss"):
        assert results[column].notna().all(), column
    assert (results["test_accuracy"] == results["test_accuracy"].round(3)).all()
    assert (results["final_test_loss"] == results["final_test_loss"].round(5)).all()
    assert (results["train_seconds"] + results["compile_seconds"] <= results["wall_seconds"] + 0.05).all()
    raw = (sweep / "results.csv").read_text()
    assert max(len(field) for line in raw.splitlines()[1:] for field in line.split(",")[14:]) <= 12


def test_sigterm_to_a_parallel_sweep_stops_its_workers_and_keeps_results(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    parent = start_cli(tmp_path, "-m", "hydra/launcher=local_parallel", "algo=fp,sgd,fp", "seed=0,1", *FAST,
                       "train.epochs=100000", f"hydra.sweep.dir={sweep}")
    locks = wait_for(lambda: len(list(sweep.glob("*/checkpoint.pt"))) >= 2 and list(sweep.glob("*/run.lock")))
    workers = {int(p.read_text().split()[0]) for p in locks}
    assert parent.pid not in workers  # the jobs run in joblib's worker processes
    parent.send_signal(signal.SIGTERM)
    stopped = time.time()
    parent.wait(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=max(0.1, 10 - (time.time() - stopped)))
    assert parent.returncode == 130, parent.stdout.read() + parent.stderr.read()
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) >= 2 and set(results["status"]) == {"interrupted"}
    assert all("SIGTERM" in r for r in results["reason"])
    assert not list(sweep.glob("*/run.lock"))
    assert len(list(sweep.glob("*/summary.json"))) == len(results)  # jobs that had not started did not start
    cores = len(os.sched_getaffinity(0))
    assert {summary(p.parent)["config"]["threads"] for p in sweep.glob("*/summary.json")} == {max(1, cores // 2)}


def test_ctrl_c_stops_a_sequential_sweep_and_a_rerun_skips_and_resumes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", "algo=fp", "train.epochs=1,100,1", "threads=1", *FAST, f"hydra.sweep.dir={sweep}"]
    parent = start_cli(tmp_path, *args)
    wait_for(lambda: (sweep / "1" / "checkpoint.pt").is_file())  # job 0 done, job 1 after its first epoch
    parent.send_signal(signal.SIGINT)
    parent.wait(timeout=60)
    assert parent.returncode == 130
    results = pd.read_csv(sweep / "results.csv")
    assert results["status"].tolist() == ["completed", "interrupted"]  # job 2 never started
    first = (sweep / "0" / "summary.json").stat().st_mtime_ns, summary(sweep / "0")

    rerun = run_cli(tmp_path, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert ((sweep / "0" / "summary.json").stat().st_mtime_ns, summary(sweep / "0")) == first  # skipped
    assert "skipped: this job completed before" in rerun.stdout
    resumed = summary(sweep / "1")
    assert resumed["status"] == "completed" and resumed["epochs_completed"] == 100
    assert 1 <= resumed["resumed_after_epochs"][0] < 100
    assert pd.read_csv(sweep / "1" / "metrics.csv")["epoch"].tolist() == list(range(1, 101))
    assert pd.read_csv(sweep / "results.csv")["status"].tolist() == ["completed"] * 3


def test_a_rerun_after_a_config_edit_runs_the_job_again_and_keeps_the_earlier_results(tmp_path: Path) -> None:
    """Same overrides, other config (a YAML edited in between): the finished job is not taken as done."""
    sweep = tmp_path / "sweep"
    args = ["-m", "algo=fp", "train.epochs=1", "threads=1", *FAST, f"hydra.sweep.dir={sweep}"]
    assert run_cli(tmp_path, *args).returncode == 0
    job = sweep / "0"
    earlier = summary(job)
    earlier["config"]["train"]["lr"] = 0.5  # as if the YAML had said lr 0.5 when the job ran
    (job / "summary.json").write_text(json.dumps(earlier))
    rerun = run_cli(tmp_path, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "skipped" not in rerun.stdout
    assert f"config changed since it ran (train.lr=0.5, now {summary(job)['config']['train']['lr']})" in rerun.stdout
    [kept] = job.glob("superseded-*")
    assert json.loads((kept / "summary.json").read_text())["config"]["train"]["lr"] == 0.5
    assert (kept / "metrics.csv").is_file() and summary(job)["status"] == "completed"
    again = run_cli(tmp_path, *args)  # now it is the same job: skipped
    assert "skipped: this job completed before" in again.stdout


def test_a_sweep_directory_of_other_overrides_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(OmegaConf.to_yaml({"hydra": {"overrides": {"task": ["algo=fp,sgd"]}}}))
    proc = run_cli(tmp_path, "-m", "algo=fp", *FAST, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 2 and "holds a sweep of other overrides (algo=fp,sgd)" in proc.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]
    (sweep / "sweep.lock").write_text(f"{os.getpid()}\n")  # a live sweep (this process) holds it
    proc = run_cli(tmp_path, "-m", "algo=fp,sgd", *FAST, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 2 and f"in use by a running sweep (pid {os.getpid()})" in proc.stderr


def test_parallel_jobs_share_the_cores() -> None:
    def hydra(target: str, n_jobs: int) -> SimpleNamespace:
        return SimpleNamespace(launcher=OmegaConf.create({"_target_": target, "n_jobs": n_jobs}))

    assert threads_per_job(hydra(JOBLIB_LAUNCHER, 2), cores=2) == 1
    assert threads_per_job(hydra(JOBLIB_LAUNCHER, 2), cores=16) == 8
    assert threads_per_job(hydra(JOBLIB_LAUNCHER, 10), cores=4) == 1
    assert threads_per_job(hydra(JOBLIB_LAUNCHER, -1), cores=8) == 1
    assert threads_per_job(hydra(JOBLIB_LAUNCHER, -2), cores=8) == 1  # 7 jobs
    assert threads_per_job(hydra("hydra._internal.core_plugins.basic_launcher.BasicLauncher", 1), cores=8) is None

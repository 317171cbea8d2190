"""Paper Fig. 5: a panel's job is a training run with replicas over the grid, sweeps become ``fig5.csv``,
the plot draws from it alone, and ``figures`` run again recomputes nothing that completed."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from analog_train import figures
from analog_train.config import compose_raw, validate
from analog_train.plots.fig5 import plot_fig5
from analog_train.runner.fig5 import COLUMNS, collect, training_run

DATA = os.environ.get("ANALOG_TRAIN_DATA")


@pytest.mark.parametrize("panel,vary,values", [("fig5_fc_sigma", "reference_std", [0.0, 0.2, 0.5]),
                                                ("fig5_fc_states", "n_states", [10, 20, 40])])
def test_a_panel_job_is_a_training_run_with_replicas_over_its_grid(panel, vary, values):
    cfg = compose_raw([f"experiment={panel}", "algo=agad"])
    validate(cfg)
    run = training_run(cfg)
    assert run.experiment is None
    assert dict(run.population.device) == {vary: values} and run.population.repeats == 2
    assert (run.data.train_subset, run.data.test_subset, run.train.epochs) == (6000, 2000, 3)
    assert run.device.family == "soft_bounds" and run.device.subtract_symmetry_point
    paper = compose_raw([f"experiment={panel}", "algo=agad", "experiment.scale=paper"])
    validate(paper)
    run = training_run(paper)
    assert run.data.train_subset is None and run.train.epochs == 10 and run.population.repeats == 3


def test_the_fp_baseline_trains_at_its_own_learning_rate_and_the_analog_jobs_at_the_panels():
    """``experiment.fp_lr`` sets the FP line's lr only (the LSTM's digital lr diverges on analog tiles)."""
    def run(*overrides: str):
        cfg = compose_raw(list(overrides))
        validate(cfg)
        return training_run(cfg)

    assert (run("experiment=fig5_lstm", "algo=fp").train.lr, run("experiment=fig5_lstm", "algo=agad").train.lr) == \
        (1.0, 0.03)
    assert run("experiment=fig5_lenet", "algo=fp").train.lr == 0.1  # no fp_lr: the panel's schedule for every algorithm


def fake_job(root: Path, name: str, algo: str, sp: bool, rows: list[dict], status: str = "completed") -> None:
    job = root / name
    job.mkdir(parents=True)
    config = {"algo": {"name": algo}, "model": {"name": "fc"},
              "device": {"subtract_symmetry_point": sp, "n_states": 20, "reference_std": 0.0}}
    (job / "summary.json").write_text(json.dumps({"status": status, "config": config,
                                                  "endurance": {"A": {"max_pulses_per_sample": 2.0,
                                                                      "mean_pulses_per_sample": 0.5}}}))
    pd.DataFrame(rows).to_csv(job / "metrics.csv", index=False)


def test_sweeps_become_one_tidy_row_per_replica_and_the_plot_reads_only_that(tmp_path):
    base = {"samples_seen": 100, "train_loss": 1.0, "test_loss": 0.5, "lr": 0.2, "seconds": 1, "samples_per_s": 1}
    rows = [{"epoch": e, "replica": r, "reference_std": s, "repeat": k, **base, "test_error": 10.0 + e + s * 10}
            for e in (1, 2) for r, (s, k) in enumerate([(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)])]
    fake_job(tmp_path / "analog", "0", "ttv2", True, rows)
    fake_job(tmp_path / "analog", "1", "agad", False, rows)
    fake_job(tmp_path / "fp", "0", "fp", False, [{"epoch": 2, "replica": 0, **base, "test_error": 5.0}])
    table, endurance = collect({"B": [tmp_path / "analog", tmp_path / "fp"]})
    assert list(table.columns) == COLUMNS and len(table) == 9  # the last epoch of 4 + 4 replicas, and FP
    assert set(table.algo) == {"ttv2", "agad", "fp"} and table.epochs.eq(2).all()
    ttv2 = table[table.algo == "ttv2"]
    assert ttv2.sigma_r.tolist() == [0.0, 0.0, 0.5, 0.5] and ttv2.test_error.tolist() == [12.0, 12.0, 17.0, 17.0]
    assert table[table.algo == "fp"].sp_subtracted.isna().all() and table[table.algo == "agad"].sp_subtracted.eq(False).all()
    assert set(endurance.array) == {"A"} and len(endurance) == 3
    csv = tmp_path / "fig5.csv"
    table.to_csv(csv, index=False)
    files = plot_fig5(csv, tmp_path / "fig5")
    assert all(p.is_file() and p.stat().st_size > 0 for p in files)


@pytest.mark.skipif(not DATA, reason="needs ANALOG_TRAIN_DATA")
def test_figures_run_again_reuse_the_fig5_jobs_that_completed(tmp_path, monkeypatch):
    """A tiny panel (smoke scale) twice into one folder: the second pass trains nothing again."""
    monkeypatch.setattr(figures, "FIG5_PANELS", {"B": "fig5_fc_sigma"})
    monkeypatch.setattr(figures, "FIG5_SWEEPS", {"analog": ["algo=agad", "device.subtract_symmetry_point=true,false"],
                                                 "fp": ["algo=fp"]})
    monkeypatch.setenv("ANALOG_TRAIN_DATA", DATA)
    figures.make_figures(tmp_path, smoke=True, only=["fig5"], log=lambda line: None)
    jobs = sorted(tmp_path.glob("runs/fig5_fc_sigma/*/*/summary.json"))
    assert len(jobs) == 3 and all(json.loads(p.read_text())["status"] == "completed" for p in jobs)
    stamps = {p: p.stat().st_mtime_ns for p in jobs}
    first = pd.read_csv(tmp_path / "fig5.csv")
    assert "Fig. 5" in (tmp_path / "REPORT.md").read_text()  # the report follows every figures run
    figures.make_figures(tmp_path, smoke=True, only=["fig5"], log=lambda line: None)
    assert {p: p.stat().st_mtime_ns for p in jobs} == stamps  # no job ran again
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "fig5.csv"), first)
    logs = "".join(p.read_text() for p in tmp_path.glob("runs/fig5_fc_sigma/*/*/analog-train.log"))
    assert logs.count("skipped: this job completed before") == 3

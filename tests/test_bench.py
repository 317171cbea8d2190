"""``analog-train bench``: every case timed, the reference timed twice, ratios printed."""

import os

import pytest

from analog_train.runner.bench import run_benchmark

DATA = os.environ.get("ANALOG_TRAIN_DATA")


@pytest.mark.skipif(not DATA, reason="needs ANALOG_TRAIN_DATA")
def test_bench_times_each_case_and_the_reference_twice(capsys):
    cases = [("fp", ["algo=fp"]), ("agad", ["algo=agad"])]
    seconds = run_benchmark(samples=40, threads=1, data_root=DATA, cases=cases)
    assert set(seconds) == {"fp", "agad", "fp (again)"}
    assert all(v > 0 for v in seconds.values())
    out = capsys.readouterr().out
    base = 0.5 * (seconds["fp"] + seconds["fp (again)"])
    assert f"{seconds['agad'] / base:6.2f} x fp" in out

"""``analog-train bench``: every case timed between two reference timings, ratios printed."""

import os

import pytest

from analog_train.runner.bench import run_benchmark

DATA = os.environ.get("ANALOG_TRAIN_DATA")


@pytest.mark.skipif(not DATA, reason="needs ANALOG_TRAIN_DATA")
def test_bench_times_each_case_between_two_reference_timings(capsys):
    cases = [("fp", ["algo=fp"]), ("sgd", ["algo=sgd"]), ("agad", ["algo=agad"])]
    seconds = run_benchmark(samples=40, threads=1, data_root=DATA, cases=cases)
    assert list(seconds) == ["fp", "sgd", "fp (2)", "agad", "fp (3)"]
    assert all(v > 0 for v in seconds.values())
    out = capsys.readouterr().out
    assert f"{seconds['sgd'] / (0.5 * (seconds['fp'] + seconds['fp (2)'])):6.2f} x fp" in out
    assert f"{seconds['agad'] / (0.5 * (seconds['fp (2)'] + seconds['fp (3)'])):6.2f} x fp" in out

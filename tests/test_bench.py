"""``analog-train bench``: every case timed in blocks alternating with the reference, ratios printed."""

import os

import pytest

from analog_train.runner import bench
from analog_train.runner.bench import run_benchmark

DATA = os.environ.get("ANALOG_TRAIN_DATA")


@pytest.mark.skipif(not DATA, reason="needs ANALOG_TRAIN_DATA")
def test_bench_alternates_each_case_with_the_reference(capsys, monkeypatch):
    monkeypatch.setattr(bench, "BLOCK_BATCHES", 2)
    calls = []
    run = bench._Session.run
    monkeypatch.setattr(bench._Session, "run", lambda self, n, timed=True: (calls.append((id(self), n, timed)),
                                                                            run(self, n, timed))[1])
    cases = [("fp", ["algo=fp"]), ("sgd", ["algo=sgd"]), ("agad", ["algo=agad"])]
    seconds = run_benchmark(samples=50, threads=1, data_root=DATA, cases=cases)
    assert list(seconds) == ["sgd", "fp (with sgd)", "agad", "fp (with agad)"]
    assert all(v > 0 for v in seconds.values())
    out = capsys.readouterr().out
    assert f"{seconds['sgd'] / seconds['fp (with sgd)']:6.2f} x fp" in out
    assert f"{seconds['agad'] / seconds['fp (with agad)']:6.2f} x fp" in out
    # per case: two untimed warm-ups, then 5 batches in blocks of 2, 2, 1, reference first
    first = calls[:8]
    ref, case = first[0][0], first[1][0]
    assert [(c[0] == ref, c[1], c[2]) for c in first] == [
        (True, 20, False), (False, 20, False), (True, 2, True), (False, 2, True),
        (True, 2, True), (False, 2, True), (True, 1, True), (False, 1, True)]
    assert ref != case

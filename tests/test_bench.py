"""``analog-train bench``: every case timed in blocks alternating with the reference, ratios printed."""

import os

import pytest

from analog_train.runner import bench
from analog_train.runner.bench import run_benchmark

DATA = os.environ.get("ANALOG_TRAIN_DATA")


@pytest.mark.skipif(not DATA, reason="needs ANALOG_TRAIN_DATA")
@pytest.mark.parametrize("model,subset", [("fc", 60), ("lstm", 20000)])
def test_bench_alternates_each_case_with_the_reference(capsys, monkeypatch, model, subset):
    monkeypatch.setattr(bench, "BLOCK_SECONDS", 1e-9)  # blocks of one mini-batch
    calls = []
    run = bench._Session.run
    monkeypatch.setattr(bench._Session, "run", lambda self, n, timed=True: (calls.append((self, n, timed)),
                                                                            run(self, n, timed))[1])
    cases = [("fp", ["algo=fp"]), ("sgd", ["algo=sgd"]), ("agad", ["algo=agad"])]
    results = run_benchmark(model=model, min_seconds=0.05, threads=1, data_root=DATA, subset=subset, cases=cases)
    assert list(results) == ["sgd", "agad"]
    out = capsys.readouterr().out
    for label, row in results.items():
        assert row["seconds"] > 0 and row["reference"] > 0
        assert row["ratio"] == pytest.approx(row["seconds"] / row["reference"])
        assert f"{row['ratio']:6.2f} x fp" in out
    assert ("1M characters" if model == "lstm" else "60k images") in out
    # the pulses per device and sample that explain a case's cost: W for in-memory SGD, A and C for AGAD
    assert set(results["sgd"]["pulses"]) == {"W"} and set(results["agad"]["pulses"]) == {"A", "C"}
    assert results["sgd"]["pulses"]["W"] > 0 and results["agad"]["pulses"]["A"] > results["agad"]["pulses"]["C"]
    assert f"pulses/device/{'character' if model == 'lstm' else 'image'}: A " in out
    # per case: untimed warm-ups, then the reference and the case in turns, reference first
    first = calls[:4]
    ref, case = first[0][0], first[1][0]
    assert [(c[0] is ref, c[1], c[2]) for c in first] == [
        (True, bench.WARMUP_BATCHES, False), (False, bench.WARMUP_BATCHES, False), (True, 1, True), (False, 1, True)]
    sessions = [c[0] for c in calls]
    assert all(a is not b for a, b in zip(sessions, sessions[1:]))  # never two blocks of one session in a row
    assert ref is not case

"""``analog-train bench``: seconds per 60k training samples of the FC network, per algorithm, in one process.

All algorithms run back to back on the same data in the same process, and the reference (``fp``)
is timed again between every two cases: each case's ratio divides its time by the mean of the
reference timings just before and just after it. On a shared, noisy machine the speed drifts by
tens of percent within a minute; a neighbouring reference cancels that drift to first order,
where one reference timing at the start and one at the end did not. The reference trains
``REFERENCE_EPOCHS`` epochs on the same samples, so that its timings span about as many seconds
as an analog case: one epoch of ``fp`` lasts about a second, short enough for a burst of load on
a shared machine to move it by half. Each run first trains on ``WARMUP_SAMPLES`` samples
untimed, and every compiled kernel is loaded before the first case, so that one-time costs do
not count against a per-sample rate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig

from analog_train.algorithms import transfer_kernel
from analog_train.config import compose_config, validate
from analog_train.crossbar import mvm_kernel
from analog_train.devices import kernels
from analog_train.runner.train import train

WARMUP_SAMPLES = 200
REFERENCE_EPOCHS = 5  # epochs of the reference case per timing

# (label, overrides): the configurations the benchmark times.
CASES: list[tuple[str, list[str]]] = [
    ("fp", ["algo=fp"]),
    ("sgd (fast)", ["algo=sgd", "update.engine=fast"]),
    ("sgd (exact)", ["algo=sgd", "update.engine=exact"]),
    ("ttv2", ["algo=ttv2"]),
    ("cttv2", ["algo=cttv2"]),
    ("agad", ["algo=agad"]),
]


def bench_config(overrides: list[str], samples: int, batch_size: int, threads: Optional[int],
                 data_root: Optional[str], epochs: int = 1) -> DictConfig:
    common = [
        "data=mnist", f"data.train_subset={samples}", "data.test_subset=1000", f"data.batch_size={batch_size}",
        f"train.epochs={epochs}", "progress=false", "device=softbounds",
    ]
    if threads:
        common.append(f"threads={threads}")
    if data_root:
        common.append(f"data.root={data_root}")
    cfg = compose_config(common + overrides)
    validate(cfg)
    return cfg


def run_benchmark(samples: int = 6000, batch_size: int = 10, exact: bool = True, threads: Optional[int] = None,
                  data_root: Optional[str] = None, cases: Optional[list[tuple[str, list[str]]]] = None) -> dict[str, float]:
    """Time each case; print s/60k samples as they finish, then the ratios to the reference; return the seconds.

    The first case is the reference; it runs ``REFERENCE_EPOCHS`` epochs before, between and after
    the others, and its timings are returned as ``"<label>"``, ``"<label> (2)"``, ``"<label> (3)"``, ...
    """
    cases = cases or [c for c in CASES if exact or "exact" not in c[0]]
    (ref_label, ref_overrides), others = cases[0], cases[1:]
    seconds: dict[str, float] = {}
    ratios: dict[str, float] = {}
    print(f"FC 784-256-128-10 on {samples} MNIST samples, batch {batch_size}, torch threads "
          f"{torch.get_num_threads() if not threads else threads}; {ref_label}: {REFERENCE_EPOCHS} epochs per timing")
    kernels.warm_up()
    transfer_kernel.warm_up()
    mvm_kernel.warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        def timed(label: str, overrides: list[str], epochs: int = 1) -> float:
            name = label.replace(" ", "_").replace("(", "").replace(")", "")
            train(bench_config(overrides, WARMUP_SAMPLES, batch_size, threads, data_root), Path(tmp) / f"{name}_warmup")
            result = train(bench_config(overrides, samples, batch_size, threads, data_root, epochs), Path(tmp) / name)
            seconds[label] = result.summary["seconds_per_60k_samples"]
            print(f"  {label:<14} {seconds[label]:9.1f} s / 60k samples", flush=True)
            return seconds[label]

        before = timed(ref_label, ref_overrides, REFERENCE_EPOCHS)
        for k, (label, overrides) in enumerate(others, start=2):
            own = timed(label, overrides)
            after = timed(f"{ref_label} ({k})", ref_overrides, REFERENCE_EPOCHS)
            ratios[label] = own / (0.5 * (before + after))
            before = after
    print(f"ratios to {ref_label} (each to the mean of the {ref_label} timings just before and after it):")
    for label, _ in others:
        print(f"  {label:<14} {ratios[label]:6.2f} x {ref_label}")
    return seconds

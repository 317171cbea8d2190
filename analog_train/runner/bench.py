"""``analog-train bench``: seconds per 60k training samples of the FC network, per algorithm, in one process.

All algorithms run back to back on the same data in the same process, so the ratios to ``fp``
are meaningful on a shared, noisy machine where absolute seconds drift. ``fp`` is timed first and
again last, and the mean of the two is the denominator, so that a drift of the machine's speed
during the run cancels to first order. Each case first trains on ``WARMUP_SAMPLES`` samples
untimed, and every compiled kernel is loaded before the first case, so that one-time costs do not
count against a per-sample rate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig

from analog_train.algorithms import transfer_kernel
from analog_train.config import compose_config, validate
from analog_train.devices import kernels
from analog_train.runner.train import train

WARMUP_SAMPLES = 200

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
                 data_root: Optional[str]) -> DictConfig:
    common = [
        "data=mnist", f"data.train_subset={samples}", "data.test_subset=1000", f"data.batch_size={batch_size}",
        "train.epochs=1", "progress=false", "device=softbounds",
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
    """Time each case; print s/60k samples as they finish, then the ratios to fp; return the seconds.

    The first case is the reference; it is timed again at the end (``"<label> (again)"``).
    """
    cases = cases or [c for c in CASES if exact or "exact" not in c[0]]
    reference = cases[0]
    seconds: dict[str, float] = {}
    print(f"FC 784-256-128-10 on {samples} MNIST samples, batch {batch_size}, torch threads {torch.get_num_threads() if not threads else threads}")
    kernels.warm_up()
    transfer_kernel.warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides in [*cases, (f"{reference[0]} (again)", reference[1])]:
            name = label.replace(" ", "_").replace("(", "").replace(")", "")
            train(bench_config(overrides, WARMUP_SAMPLES, batch_size, threads, data_root), Path(tmp) / f"{name}_warmup")
            result = train(bench_config(overrides, samples, batch_size, threads, data_root), Path(tmp) / name)
            seconds[label] = result.summary["seconds_per_60k_samples"]
            print(f"  {label:<14} {seconds[label]:9.1f} s / 60k samples", flush=True)
    base = 0.5 * (seconds[reference[0]] + seconds[f"{reference[0]} (again)"])
    print(f"ratios to {reference[0]} (mean of its two timings, {base:.1f} s / 60k samples):")
    for label, _ in cases[1:]:
        print(f"  {label:<14} {seconds[label] / base:6.2f} x {reference[0]}")
    return seconds

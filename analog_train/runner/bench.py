"""``analog-train bench``: seconds per 60k training samples of the FC network, per algorithm, and ratios to fp.

Each case trains side by side with the reference (``fp``, the first case) in one process, on the
same samples in the same order: the two alternate in blocks of ``BLOCK_BATCHES`` mini-batches,
and a case's ratio is its time over the reference's time in the blocks in between. On a shared
machine the speed drifts by tens of percent within seconds to minutes (fp alone measured
5.9-14.6 s per 60k samples within one session); blocks of a fraction of a second see the same
drift, where a reference timed before and after a case of a minute often did not. Model,
optimizer and steps are the training loop's own (``train.build_trainable``, ``train.train_step``);
before the timing each model trains ``WARMUP_SAMPLES`` samples and every compiled kernel is
loaded, so that one-time costs do not count against a per-sample rate.
"""

from __future__ import annotations

import time
from typing import Optional

import torch
from omegaconf import DictConfig

from analog_train.algorithms import transfer_kernel
from analog_train.config import compose_config, validate
from analog_train.crossbar import mvm_kernel
from analog_train.data import load_data
from analog_train.devices import kernels
from analog_train.runner.tasks import Task, build_task
from analog_train.runner.train import build_trainable, train_step
from analog_train.seeding import derived_seed

WARMUP_SAMPLES = 200
BLOCK_BATCHES = 50  # mini-batches of one configuration between switches

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


class _Session:
    """One configuration's model and optimizer, trained a block of mini-batches at a time."""

    def __init__(self, cfg: DictConfig, task: Task) -> None:
        torch.manual_seed(derived_seed(cfg.seed, 0, 0))
        self.model, self.optimizer = build_trainable(cfg, task.spec)
        self.task = task
        self.batches = list(task.batches(torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 4))))
        self.done = 0  # mini-batches trained, the order wraps around
        self.seconds = 0.0  # time of the timed blocks

    def run(self, n: int, timed: bool = True) -> None:
        start = time.perf_counter()
        for _ in range(n):
            train_step(self.model, self.optimizer, self.task, self.batches[self.done % len(self.batches)])
            self.done += 1
        if timed:
            self.seconds += time.perf_counter() - start


def run_benchmark(samples: int = 6000, batch_size: int = 10, exact: bool = True, threads: Optional[int] = None,
                  data_root: Optional[str] = None, cases: Optional[list[tuple[str, list[str]]]] = None) -> dict[str, float]:
    """Time each case against the reference; print s/60k samples as they finish, then the ratios.

    Returns the seconds per 60k samples of every case and, as ``"<reference> (with <label>)"``,
    of the reference in the blocks alternating with it.
    """
    cases = cases or [c for c in CASES if exact or "exact" not in c[0]]
    (ref_label, ref_overrides), others = cases[0], cases[1:]
    n_batches = max(1, samples // batch_size)
    warm_batches = max(1, WARMUP_SAMPLES // batch_size)
    per_60k = 60000 / (n_batches * batch_size)
    if threads:
        torch.set_num_threads(threads)
    print(f"FC 784-256-128-10 on {samples} MNIST samples, batch {batch_size}, torch threads "
          f"{torch.get_num_threads()}; each case alternates with {ref_label} in blocks of {BLOCK_BATCHES} mini-batches")
    kernels.warm_up()
    transfer_kernel.warm_up()
    mvm_kernel.warm_up()
    ref_cfg = bench_config(ref_overrides, samples, batch_size, threads, data_root)
    task = build_task(ref_cfg.data, load_data(ref_cfg.data), torch.device("cpu"))
    seconds: dict[str, float] = {}
    ratios: dict[str, float] = {}
    for label, overrides in others:
        ref = _Session(ref_cfg, task)
        case = _Session(bench_config(overrides, samples, batch_size, threads, data_root), task)
        for session in (ref, case):
            session.run(warm_batches, timed=False)
        while case.done - warm_batches < n_batches:
            n = min(BLOCK_BATCHES, n_batches - (case.done - warm_batches))
            ref.run(n)
            case.run(n)
        seconds[label] = case.seconds * per_60k
        seconds[f"{ref_label} (with {label})"] = ref.seconds * per_60k
        ratios[label] = case.seconds / ref.seconds
        print(f"  {label:<14} {seconds[label]:9.1f} s / 60k samples   {ref_label} alongside "
              f"{seconds[f'{ref_label} (with {label})']:6.1f} s   {ratios[label]:6.2f} x {ref_label}", flush=True)
    print(f"ratios to {ref_label} (each to the {ref_label} blocks alternating with it):")
    for label, _ in others:
        print(f"  {label:<14} {ratios[label]:6.2f} x {ref_label}")
    return seconds

"""``analog-train bench``: training speed of a network per algorithm, as ratios to the same network in torch.

Each case trains side by side with the reference (``fp``: the same model with torch layers, the
first case) in one process, on the same mini-batches in the same order: the two alternate in blocks
of about ``BLOCK_SECONDS`` of the reference, and a case's ratio is its time over the reference's
time in the blocks in between. On a shared machine the speed drifts by tens of percent within
seconds to minutes; blocks of a fraction of a second see the same drift, where a reference timed
before and after a case often did not. Model, optimizer and steps are the training loop's own
(``train.build_trainable``, ``train.train_step``); before the timing each model trains a few
batches and every compiled kernel is loaded, so one-time costs do not count against the rate. A
case runs until it has trained ``min_seconds`` (and the reference as many batches). Speeds are
seconds per 60k samples of the task (images; per million characters for the LSTM), the peak
memory of the process while the case ran, and the pulses each array's devices received per
sample on average (a transfer algorithm's cost follows A's, which depend on the training phase).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig

from analog_train.algorithms import transfer_kernel
from analog_train.config import compose_config, validate
from analog_train.crossbar import mvm_kernel
from analog_train.data import load_data
from analog_train.devices import kernels
from analog_train.runner.tasks import Task, build_task
from analog_train.runner.train import build_trainable, endurance, train_step
from analog_train.seeding import derived_seed

WARMUP_BATCHES = 3
BLOCK_SECONDS = 0.5  # of the reference between switches

# (label, overrides): the configurations the benchmark times; the first is the reference.
CASES: list[tuple[str, list[str]]] = [
    ("fp", ["algo=fp"]),
    ("sgd (fast)", ["algo=sgd", "update.engine=fast"]),
    ("sgd (exact)", ["algo=sgd", "update.engine=exact"]),
    ("ttv2", ["algo=ttv2"]),
    ("cttv2", ["algo=cttv2"]),
    ("agad", ["algo=agad"]),
]
PER = {"characters": (1_000_000, "1M characters")}  # the rate's unit per task unit (default: 60k samples)


def bench_config(model: str, overrides: list[str], batch_size: Optional[int], threads: Optional[int],
                 data_root: Optional[str], subset: Optional[int]) -> DictConfig:
    common = [f"model={model}", "train.epochs=1", "progress=false", "device=softbounds"]
    if batch_size:
        common.append(f"data.batch_size={batch_size}")
    if threads:
        common.append(f"threads={threads}")
    if data_root:
        common.append(f"data.root={data_root}")
    if subset:
        common += [f"data.train_subset={subset}", "data.test_subset=100"]
    cfg = compose_config(common + overrides)
    validate(cfg)
    return cfg


class _Session:
    """One configuration's model and optimizer, trained a block of mini-batches at a time."""

    def __init__(self, cfg: DictConfig, task: Task, batches: list) -> None:
        torch.manual_seed(derived_seed(cfg.seed, 0, 0))
        self.model, self.optimizer = build_trainable(cfg, task.spec)
        self.task, self.batches, self.clip = task, batches, cfg.train.clip_grad_norm
        self.done = 0  # mini-batches trained, the order wraps around
        self.samples = 0  # samples of the timed blocks
        self.trained = 0  # samples of every block, the untimed included
        self.seconds = 0.0  # time of the timed blocks

    def run(self, n: int, timed: bool = True) -> None:
        start = time.perf_counter()
        samples = 0
        for _ in range(n):
            batch = self.batches[self.done % len(self.batches)]
            train_step(self.model, self.optimizer, self.task, batch, self.clip)
            samples += self.task.batch_samples(batch)
            self.done += 1
        self.trained += samples
        if timed:
            self.seconds += time.perf_counter() - start
            self.samples += samples


class PeakMemory:
    """The process's peak resident memory from :meth:`reset` on (Linux ``/proc``; None elsewhere)."""

    def __init__(self) -> None:
        self.available = Path("/proc/self/clear_refs").exists()

    def reset(self) -> None:
        if self.available:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM restarts from the current size
            except OSError:
                self.available = False

    def mib(self) -> Optional[float]:
        if not self.available:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None


def run_benchmark(model: str = "fc", min_seconds: float = 20.0, batch_size: Optional[int] = None,
                  exact: bool = False, threads: Optional[int] = None, data_root: Optional[str] = None,
                  subset: Optional[int] = None, cases: Optional[list[tuple[str, list[str]]]] = None) -> dict[str, dict]:
    """Time each case against the reference; print a row per case as it finishes, then the ratios.

    Returns per case label: seconds per rate unit, the reference's in the blocks alternating with
    it, the ratio, the peak memory (MiB) and the mean pulses per device and sample per array kind.
    """
    cases = cases or [c for c in CASES if exact or "exact" not in c[0]]
    (ref_label, ref_overrides), others = cases[0], cases[1:]
    if threads:
        torch.set_num_threads(threads)
    kernels.warm_up()
    transfer_kernel.warm_up()
    mvm_kernel.warm_up()
    ref_cfg = bench_config(model, ref_overrides, batch_size, threads, data_root, subset)
    task = build_task(ref_cfg.data, load_data(ref_cfg.data), torch.device("cpu"))
    batches = list(task.batches(torch.Generator().manual_seed(derived_seed(ref_cfg.seed, 0, 4))))
    per, per_label = PER.get(task.unit, (60_000, f"60k {task.unit}"))
    print(f"{model} ({task.unit}), batch {ref_cfg.data.batch_size}, torch threads {torch.get_num_threads()}; each case "
          f"alternates with {ref_label} in blocks of ~{BLOCK_SECONDS} s of {ref_label}, for {min_seconds:g} s")
    memory = PeakMemory()
    results: dict[str, dict] = {}
    for label, overrides in others:
        memory.reset()
        ref = _Session(ref_cfg, task, batches)
        case = _Session(bench_config(model, overrides, batch_size, threads, data_root, subset), task, batches)
        for session in (ref, case):
            session.run(WARMUP_BATCHES, timed=False)
        ref.run(1)
        case.run(1)
        block = max(1, round(BLOCK_SECONDS / max(ref.seconds, 1e-6)))
        while case.seconds < min_seconds:
            ref.run(block)
            case.run(block)
        row = {"seconds": case.seconds / case.samples * per, "reference": ref.seconds / ref.samples * per,
               "ratio": (case.seconds / case.samples) / (ref.seconds / ref.samples), "peak_mib": memory.mib(),
               "pulses": {name: s["mean_pulses_per_sample"] for name, s in endurance(case.model, case.trained).items()}}
        results[label] = row
        peak = f"{row['peak_mib']:7.0f} MiB" if row["peak_mib"] is not None else ""
        pulses = ", ".join(f"{name} {n:.3g}" for name, n in row["pulses"].items())
        print(f"  {label:<12} {row['seconds']:9.1f} s / {per_label}   {ref_label} alongside {row['reference']:7.1f} s"
              f"   {row['ratio']:6.2f} x {ref_label}   peak {peak}"
              + (f"   pulses/device/{task.sample_name}: {pulses}" if pulses else ""), flush=True)
    print(f"ratios to {ref_label} (each to the {ref_label} blocks alternating with it):")
    for label in results:
        print(f"  {label:<12} {results[label]['ratio']:6.2f} x {ref_label}")
    return results

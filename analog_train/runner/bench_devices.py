"""``analog-train bench devices``: speed of one mini-batch pulsed update per device family and engine.

Each case times :func:`analog_train.crossbar.pulsed_update.pulsed_update` on a 256 x 784 array
(the first layer of the FC network) with a batch of 10 MNIST-like samples: x has about 19 % of its
pixels on (values in (0, 1]), d is Gaussian with the size of a first-layer error. The table gives
milliseconds per mini-batch, device updates per second (batch x out x in element-samples per
second) and the fast/exact speed-up.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Optional

import torch

from analog_train.config import DeviceConfig, UpdateConfig
from analog_train.crossbar.pulsed_update import pulsed_update
from analog_train.devices.onesided import make_array
from analog_train.devices.parameters import resolve
from analog_train.devices.presets import compose_device

# One device per family: the shipped preset where the family has one (conf/device/), else a
# mid-range device of that family.
PRESET_CASES = {"constant_step": "gokmen_vlasov", "linear_step": "ecram", "soft_bounds": "reram",
                "exp_step": "reram_es", "one-sided exp_step": "pcm"}
OWN_CASES: dict[str, DeviceConfig] = {
    "pow_step": DeviceConfig(family="pow_step", dw_min=0.004, w_max=1.0, w_min=-1.0, pow_gamma=1.5),
    "piecewise_step": DeviceConfig(family="piecewise_step", dw_min=0.002, w_max=1.0, w_min=-1.0,
                                   piecewise_up=[1.6, 1.3, 1.0, 0.7, 0.4], piecewise_down=[0.4, 0.7, 1.0, 1.3, 1.6]),
}


def default_cases() -> dict[str, Any]:
    """Benchmark label -> device config, in family order."""
    cases: dict[str, Any] = {f"{family} ({preset})": resolve(compose_device(preset)) for family, preset in PRESET_CASES.items()}
    cases.update(OWN_CASES)
    order = ("constant", "linear", "soft", "pow", "exp", "piecewise", "one-sided")
    return {k: cases[k] for o in order for k in cases if k.startswith(o)}


def mnist_like_batch(batch: int, n_in: int, n_out: int, gen: torch.Generator, d_scale: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (1, B, in)`` with ~19 % pixels on in (0, 1], ``d (1, B, out)`` Gaussian of std ``d_scale``."""
    on = torch.rand(1, batch, n_in, generator=gen) < 0.19
    x = torch.where(on, torch.rand(1, batch, n_in, generator=gen).clamp(min=0.05), torch.zeros(()))
    d = d_scale * torch.randn(1, batch, n_out, generator=gen)
    return x, d


def time_update(cfg: DeviceConfig, engine: str, shape: tuple[int, int] = (256, 784), batch: int = 10,
                lr: float = 0.1, min_seconds: float = 1.0, max_reps: int = 50, seed: int = 0) -> float:
    """Seconds per mini-batch update (median over repeats, after one warm-up)."""
    gen = torch.Generator().manual_seed(seed)
    array = make_array(cfg, shape, torch.Generator().manual_seed(seed))
    update = UpdateConfig(engine=engine)
    x, d = mnist_like_batch(batch, shape[1], shape[0], gen)
    pulsed_update(array, x, d, lr, update, gen)  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (time.perf_counter() - start < min_seconds or len(times) < 3):
        t0 = time.perf_counter()
        pulsed_update(array, x, d, lr, update, gen)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def run_device_benchmark(shape: tuple[int, int] = (256, 784), batch: int = 10, lr: float = 0.1,
                         min_seconds: float = 1.0, threads: Optional[int] = None,
                         cases: Optional[dict[str, Any]] = None) -> dict[str, dict[str, float]]:
    """Time both engines for every case, print one table, return ``{case: {engine: seconds}}``."""
    if threads:
        torch.set_num_threads(threads)
    cases = cases or default_cases()
    n_updates = batch * shape[0] * shape[1]
    print(f"pulsed update of a {shape[0]}x{shape[1]} array, batch {batch} (MNIST-like x, lr {lr}), "
          f"torch threads {torch.get_num_threads()}")
    header = f"{'device':<30} {'exact ms':>9} {'fast ms':>9} {'exact upd/s':>12} {'fast upd/s':>12} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    results: dict[str, dict[str, float]] = {}
    for label, cfg in cases.items():
        sec = {engine: time_update(replace(cfg), engine, shape, batch, lr, min_seconds) for engine in ("exact", "fast")}
        results[label] = sec
        print(f"{label:<30} {1e3 * sec['exact']:9.1f} {1e3 * sec['fast']:9.2f} {n_updates / sec['exact']:12.3g} "
              f"{n_updates / sec['fast']:12.3g} {sec['exact'] / sec['fast']:8.1f}x", flush=True)
    return results


if __name__ == "__main__":
    run_device_benchmark()

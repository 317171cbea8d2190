"""Device asymmetry (paper Fig. 6, SPEC 7): the weight-programming task at wider soft bounds.

Widening the bounds ``w_max = -w_min = b`` while keeping the step at the symmetry point makes the
soft-bounds response more linear, i.e. more symmetric around the SP. With the paper's additive
form (SPEC 2) the step at ``w = 0`` is ``dw_min``, so ``dw_min = 2 / n_states`` of the base device
is kept and the number of states grows to ``n_states * b``. In-memory SGD should improve with
symmetry; TTv2/c-TTv2 need the SP as an attractor and get worse; AGAD stays flat.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig

from analog_train.config import DeviceConfig, to_object
from analog_train.devices.array import DeviceArray
from analog_train.seeding import derived_seed
from analog_train.runner.weight_programming import experiment_settings, final_means, run_grid

COLUMNS = ["algo", "w_max", "n_states", "seed", "samples", "eps_w"]
RESPONSE_COLUMNS = ["w_max", "pulse", "weight"]


def widened(base: DeviceConfig, n_states: int, bound: float) -> DeviceConfig:
    """``base`` with bounds ``+-bound`` and the step at w = 0 of an ``n_states`` device of range 2."""
    return replace(base, w_max=bound, w_min=-bound, n_states=None, dw_min=2.0 / n_states)


@torch.no_grad()
def example_responses(base: DeviceConfig, n_states: int, bounds: list[float], pulses: int, seed: int) -> pd.DataFrame:
    """``pulses`` up then ``pulses`` down pulses on one mean device (no d2d spread) per bound (Fig. 6A)."""
    mean = replace(base, w_max_dtod=0.0, w_min_dtod=0.0, dw_min_dtod=0.0, up_down_dtod=0.0, reference_std=0.0)
    cfgs = [widened(mean, n_states, b) for b in bounds]
    array = DeviceArray(cfgs, (1, 1), torch.Generator().manual_seed(seed), population=len(cfgs))
    gen = torch.Generator().manual_seed(derived_seed(seed, 0, 7))
    traces = [array.weight.flatten().clone()]
    for sign in [1.0] * pulses + [-1.0] * pulses:
        array.pulse_once(torch.full(array.shape, sign), gen)
        traces.append(array.weight.flatten().clone())
    w = torch.stack(traces)  # (2 pulses + 1, P)
    return pd.DataFrame([{"w_max": b, "pulse": t, "weight": float(w[t, i])}
                         for i, b in enumerate(bounds) for t in range(w.shape[0])], columns=RESPONSE_COLUMNS)


def asymmetry(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """``asymmetry.csv`` (eps_w per algorithm, bound and seed) and ``asymmetry_responses.csv``."""
    exp = experiment_settings(cfg)
    base = to_object(cfg.device)
    n_states, sigma_r = exp.n_states[0], exp.reference_std[0]
    points, a_cfgs = [], []
    for bound in exp.bounds:
        for seed in range(exp.seeds):
            points.append({"w_max": bound, "n_states": round(n_states * bound), "seed": seed})
            a_cfgs.append(replace(widened(base, n_states, bound), reference_std=sigma_r, **exp.fast_device))
    c_cfgs = [replace(c, **exp.weight_device) for c in a_cfgs]
    df = run_grid(cfg, exp, points, a_cfgs, c_cfgs)[COLUMNS]
    out_dir = Path(out_dir)
    df.to_csv(out_dir / "asymmetry.csv", index=False)
    responses = example_responses(base, n_states, list(exp.bounds), exp.response_pulses, cfg.construction_seed)
    responses.to_csv(out_dir / "asymmetry_responses.csv", index=False)
    return {"csv": str(out_dir / "asymmetry.csv"), "responses_csv": str(out_dir / "asymmetry_responses.csv"),
            "final_eps_w": final_means(df, ["w_max"])}

"""Pulse-response traces of a few devices (paper Fig. 2; SPEC 7 ``device_response``).

Everything goes through the public array interface (``make_array``: a :class:`DeviceArray`, or a
one-sided pair whose down pulses potentiate G-), so every family is traced the same way: N up pulses, N down pulses, then alternating up/down pulses
that converge to each device's own symmetry point (SP). The noise-free step sizes shown in panel
(c) come from a twin array with the c2c and write noise switched off: the construction draw does
not depend on those two, so the twin holds the very same devices. Pulses only: no decay, diffusion
or one-sided refresh (those act per optimizer step, not per pulse).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from analog_train.devices.array import DeviceArray
from analog_train.devices.onesided import OneSidedArray, make_array
from analog_train.devices.parameters import resolve

# Keys that only set cycle-to-cycle noise; zeroing them leaves the d2d draw unchanged.
NOISE_KEYS = ("dw_min_std", "write_noise_std", "dw_min_std_add", "dw_min_std_slope")
COLUMNS = ["preset", "device_id", "phase", "pulse_index", "direction", "weight", "step_up", "step_down", "sp"]


def noise_free(cfg: Any) -> Any:
    """The same device config without c2c/write noise (same d2d draw for the same seed)."""
    cfg = resolve(cfg)
    names = {f.name for f in fields(cfg)}
    return replace(cfg, **{k: 0.0 for k in NOISE_KEYS if k in names})


def step_sizes(twin: DeviceArray | OneSidedArray, w: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Noise-free (up, down) step magnitudes of every device of ``twin`` at visible weights ``w``."""
    steps = []
    for sign in (1.0, -1.0):
        twin.set_weights(w)
        start = twin.weight.clone()
        twin.pulse_once(torch.full(twin.shape, sign, dtype=twin.dtype), gen)
        steps.append((twin.weight - start).abs())
    return steps[0], steps[1]


def pulse_schedule(n_up: int, n_down: int, n_alt: int) -> tuple[Tensor, list[str]]:
    """Signs and phase names of the Fig. 2 protocol: ups, downs, then up/down alternating."""
    signs = torch.cat([torch.ones(n_up), -torch.ones(n_down), torch.tensor([1.0, -1.0]).repeat((n_alt + 1) // 2)[:n_alt]])
    phases = ["up"] * n_up + ["down"] * n_down + ["alternating"] * n_alt
    return signs, phases


def auto_pulses(cfg: Any, per_state: float = 1.5, lowest: int = 100, highest: int = 3000) -> int:
    """Ramp length that saturates the device: about 1.5 pulses per state, within [100, 3000].

    A fixed count would leave a 1000-state ReRAM far from its bounds while a 20-state device
    sits at them for most of the trace; Fig. 2 needs the saturation of each.
    """
    from analog_train.devices.parameters import number_of_states

    return int(min(max(round(per_state * number_of_states(resolve(cfg))), lowest), highest))


def pulse_response(
    cfg: Any,
    n_devices: int = 3,
    n_up: int = 200,
    n_down: int = 200,
    n_alt: int = 400,
    seed: int = 0,
    construction_seed: int = 0,
    preset: str = "",
) -> pd.DataFrame:
    """Tidy trace of ``n_devices`` devices: one row per device and pulse (row 0: initial read).

    Columns: preset, device_id, phase, pulse_index, direction (+1 up, -1 down, 0 read),
    weight (read after the pulse), step_up / step_down (noise-free step magnitudes at this row's
    weight, i.e. of the next pulse) and sp (the device's symmetry point).
    """
    arr = make_array(cfg, (1, n_devices), torch.Generator().manual_seed(construction_seed))
    twin = make_array(noise_free(cfg), (1, n_devices), torch.Generator().manual_seed(construction_seed))
    if not torch.allclose(arr.symmetry_point(), twin.symmetry_point()):
        raise RuntimeError(f"{preset or cfg}: the noise-free twin drew different devices")
    gen, twin_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    signs, phases = pulse_schedule(n_up, n_down, n_alt)
    weights, ups, downs = [arr.weight.clone()], [], []
    for sign in signs:
        up, dn = step_sizes(twin, arr.weight, twin_gen)
        ups.append(up)
        downs.append(dn)
        arr.pulse_once(torch.full(arr.shape, float(sign), dtype=arr.dtype), gen)
        weights.append(arr.weight.clone())
    up, dn = step_sizes(twin, arr.weight, twin_gen)  # steps at the final weight close the table
    ups.append(up)
    downs.append(dn)
    n_rows = len(weights)
    flat = lambda ts: torch.stack(ts).reshape(n_rows, n_devices).T.reshape(-1).double().numpy()  # noqa: E731
    return pd.DataFrame({
        "preset": preset,
        "device_id": torch.arange(n_devices).repeat_interleave(n_rows).numpy(),
        "phase": (["initial"] + phases) * n_devices,
        "pulse_index": torch.arange(n_rows).repeat(n_devices).numpy(),
        "direction": torch.cat([torch.zeros(1), signs]).repeat(n_devices).long().numpy(),
        "weight": flat(weights),
        "step_up": flat(ups),
        "step_down": flat(downs),
        "sp": arr.symmetry_point().reshape(-1).double().repeat_interleave(n_rows).numpy(),
    })[COLUMNS]


def array_summary(cfg: Any, n_devices: int = 1000, construction_seed: int = 0) -> dict[str, float]:
    """Step asymmetry at w = 0 and SP spread over a drawn array of ``n_devices`` devices.

    ``asymmetry`` is the mean of ``(up - down)/(up + down)`` of the noise-free steps at visible
    weight 0 (what a device sees when it starts from zero); ``sp_std`` the std of the per-device SP.
    """
    gen = lambda: torch.Generator().manual_seed(construction_seed)  # noqa: E731
    arr = make_array(cfg, (1, n_devices), gen())
    twin = make_array(noise_free(cfg), (1, n_devices), gen())
    up, dn = step_sizes(twin, torch.zeros(twin.shape), torch.Generator().manual_seed(0))
    total = up + dn
    asym = torch.where(total > 0, (up - dn) / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))
    return {"asymmetry": float(asym.mean()), "sp_std": float(arr.symmetry_point().double().std())}

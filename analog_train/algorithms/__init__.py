"""How gradients become pulses: one module per algorithm, one factory to build them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from analog_train.algorithms.agad import AGAD
from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.algorithms.cttv2 import ChoppedTTv2
from analog_train.algorithms.sgd import InMemorySGD
from analog_train.algorithms.transfer import TransferCompound
from analog_train.algorithms.ttv2 import TTv2
from analog_train.config import check_algo_arrays, to_object
from analog_train.devices.onesided import make_array

TRANSFER: dict[str, type[TransferCompound]] = {"ttv2": TTv2, "cttv2": ChoppedTTv2, "agad": AGAD}


def build_algorithm(
    algo: Any,
    devices: Any | Sequence[Any],
    shape: tuple[int, int],
    update: Any,
    construction_generator: torch.Generator,
    run_generator: torch.Generator,
    population: int = 1,
    device: torch.device | str = "cpu",
    weight_devices: Any | Sequence[Any] | None = None,
) -> AnalogAlgorithm:
    """The analog state of one ``(out, in)`` weight for ``algo.name`` on the given device config(s).

    ``devices`` is one device config or one per replica. For TTv2/c-TTv2/AGAD it describes the
    fast array A including its reference array R (``reference_mean``, ``reference_std``); the
    weight array C uses ``weight_devices``, by default the same configs without the reference
    offset (``subtract_symmetry_point`` is kept), in both cases with ``algo.device_c`` on top.
    """
    if algo.name == "sgd":
        array = make_array(devices, shape, construction_generator, population=population, device=device)
        return InMemorySGD(array, update, run_generator)
    if algo.name in TRANSFER:
        a_cfgs = [to_object(c) for c in (devices if isinstance(devices, Sequence) else [devices] * population)]
        if weight_devices is None:  # R (reference_mean/std) is A's reference array; C has none
            c_cfgs = [replace(c, reference_mean=0.0, reference_std=0.0) for c in a_cfgs]
        else:
            c_cfgs = [to_object(c) for c in (weight_devices if isinstance(weight_devices, Sequence)
                                             else [weight_devices] * population)]
        overrides = dict(getattr(algo, "device_c", None) or {})
        c_cfgs = [replace(c, **overrides) for c in c_cfgs] if overrides else c_cfgs
        for a_cfg, c_cfg in zip(a_cfgs, c_cfgs):
            check_algo_arrays(algo.name, a_cfg, c_cfg)
        return TRANSFER[algo.name](algo, a_cfgs, c_cfgs, shape, update, construction_generator, run_generator,
                                   population=population, device=device)
    raise ValueError(f"algo.name={algo.name}: no analog algorithm of that name (analog: sgd, {', '.join(TRANSFER)})")


__all__ = ["AGAD", "AnalogAlgorithm", "ChoppedTTv2", "TTv2", "TransferCompound", "build_algorithm"]

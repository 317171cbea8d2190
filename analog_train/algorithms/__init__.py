"""How gradients become pulses: one module per algorithm, one factory to build them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.algorithms.sgd import InMemorySGD
from analog_train.devices.array import DeviceArray


def build_algorithm(
    algo: Any,
    devices: Any | Sequence[Any],
    shape: tuple[int, int],
    update: Any,
    construction_generator: torch.Generator,
    run_generator: torch.Generator,
    population: int = 1,
    device: torch.device | str = "cpu",
) -> AnalogAlgorithm:
    """The analog state of one ``(out, in)`` weight for ``algo.name`` on the given device config(s)."""
    if algo.name == "sgd":
        array = DeviceArray(devices, shape, construction_generator, population=population, device=device)
        return InMemorySGD(array, update, run_generator)
    raise ValueError(f"algo.name={algo.name}: no analog algorithm of that name (analog: sgd)")


__all__ = ["AnalogAlgorithm", "build_algorithm"]

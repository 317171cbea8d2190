"""In-memory SGD: the pulsed outer-product update applied straight onto the weight array."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.crossbar.pulsed_update import pulsed_update
from analog_train.devices.array import DeviceArray


class InMemorySGD(AnalogAlgorithm):
    """``W <- W - lr d x^T`` in expectation, by stochastic pulse trains on one device array."""

    state_arrays = ("array",)

    def __init__(self, array: DeviceArray, update_cfg: Any, generator: torch.Generator) -> None:
        self.array = array
        self.update_cfg = update_cfg
        self.generator = generator

    @property
    def weight(self) -> Tensor:
        return self.array.weight

    def set_weights(self, w: Tensor) -> None:
        self.array.set_weights(w, self.generator)

    def update(self, x: Tensor, d: Tensor, lr: float) -> None:
        pulsed_update(self.array, x, d, lr, self.update_cfg, self.generator)

    def post_step(self) -> None:
        self.array.post_step(self.generator)

    def pulse_counts(self) -> dict[str, Tensor]:
        return {"W": self.array.pulse_count}

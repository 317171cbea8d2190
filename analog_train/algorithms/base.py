"""What every analog training algorithm offers the network layers.

An algorithm owns the analog arrays of one layer (their devices, buffers and counters) and turns
the kept layer input ``x`` and back-propagated error ``d`` into pulses. Layers only read the
visible weight and call :meth:`update` once per optimizer step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor

from analog_train.devices.array import load_in_place


class AnalogAlgorithm(ABC):
    """The analog state of one layer's weight matrix, with population axis P.

    A subclass names its state for checkpoints (:meth:`state_dict`): its device arrays, the tensors
    its steps change (in place or by replacing them) and its counters.
    """

    state_arrays: tuple[str, ...] = ()
    state_tensors: tuple[str, ...] = ()
    state_counters: tuple[str, ...] = ()

    @property
    @abstractmethod
    def weight(self) -> Tensor:
        """Visible weight ``(P, out, in)`` that the forward and backward MVMs read."""

    def read_weight(self) -> Tensor:
        """:attr:`weight` for the MVMs of this step; may be a kept tensor, valid until the next update."""
        return self.weight

    @abstractmethod
    def update(self, x: Tensor, d: Tensor, lr: float) -> None:
        """One optimizer step from the mini-batch's ``x (P, B, in)`` and ``d (P, B, out)``."""

    @abstractmethod
    def set_weights(self, w: Tensor) -> None:
        """Program the visible weight (initialisation)."""

    @abstractmethod
    def pulse_counts(self) -> dict[str, Tensor]:
        """Pulses received so far per device, per array name (endurance)."""

    def post_step(self) -> None:
        """Once per optimizer step after the update: device decay and diffusion."""

    def state_dict(self) -> dict[str, Any]:
        """Everything the updates change: arrays, buffers, choppers, running means, counters (copies).

        Not the random generator: it belongs to the layer, whose owner saves it.
        """
        return {"arrays": {name: getattr(self, name).state_dict() for name in self.state_arrays},
                "tensors": {name: getattr(self, name).clone() for name in self.state_tensors},
                "counters": {name: getattr(self, name) for name in self.state_counters}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy a :meth:`state_dict` into the existing tensors, in place: the compiled kernels keep numpy
        views of them."""
        for name in self.state_arrays:
            getattr(self, name).load_state_dict(state["arrays"][name])
        for name in self.state_tensors:
            load_in_place(getattr(self, name), state["tensors"][name], name)
        for name in self.state_counters:
            setattr(self, name, int(state["counters"][name]))

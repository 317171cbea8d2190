"""What every analog training algorithm offers the network layers.

An algorithm owns the analog arrays of one layer (their devices, buffers and counters) and turns
the kept layer input ``x`` and back-propagated error ``d`` into pulses. Layers only read the
visible weight and call :meth:`update` once per optimizer step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class AnalogAlgorithm(ABC):
    """The analog state of one layer's weight matrix, with population axis P."""

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

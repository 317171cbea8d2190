"""Layer factories: a model asks for linear and convolution layers; the factory makes them digital or analog.

Models (:mod:`analog_train.nn.models`) are written once against :class:`LayerFactory`; ``algo=fp``
gets :class:`DigitalLayers` (torch layers) and every analog algorithm :class:`AnalogLayers`
(tiles with their algorithm). Both draw the initial weights from the same generator in the same
order, so an fp run and an analog run of one seed start from the same network. Activations carry
a leading population axis in both: digital layers have ``P = 1``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.nn.layers import AnalogConv2d, AnalogLinear


class LayerFactory(Protocol):
    """What a model builds its layers with; each call is the next layer (layer index = call order)."""

    population: int

    def linear(self, n_in: int, n_out: int, init_fan_in: int | None = None) -> nn.Module:
        """``(B, n_in)`` or ``(P, B, n_in)`` -> ``(P, B, n_out)``, weight and bias ``U(+-1/sqrt(init_fan_in))``."""

    def conv2d(self, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
        """``(B, C, H, W)`` or ``(P, B, C, H, W)`` -> ``(P, B, out_channels, H', W')``, no padding, stride 1."""


def _uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class DigitalLinear(nn.Linear):
    """``nn.Linear`` with the population axis of the analog layers (``P = 1``)."""

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return y.unsqueeze(0) if x.dim() == 2 else y


class DigitalConv2d(nn.Conv2d):
    """``nn.Conv2d`` with the population axis of the analog layers (``P = 1``)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return super().forward(x).unsqueeze(0)
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class DigitalLayers:
    """torch layers (``algo=fp``), initialised from ``init_generator``."""

    population = 1

    def __init__(self, init_generator: torch.Generator) -> None:
        self.init = init_generator

    def linear(self, n_in: int, n_out: int, init_fan_in: int | None = None) -> nn.Module:
        layer = DigitalLinear(n_in, n_out)
        fan_in = init_fan_in or n_in
        with torch.no_grad():  # drawn as the analog layers draw them, (P=1, ...)
            layer.weight.copy_(_uniform((1, n_out, n_in), fan_in, self.init)[0])
            layer.bias.copy_(_uniform((1, 1, n_out), fan_in, self.init)[0, 0])
        return layer

    def conv2d(self, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
        layer = DigitalConv2d(in_channels, out_channels, kernel_size)
        fan_in = in_channels * kernel_size * kernel_size
        with torch.no_grad():
            layer.weight.copy_(_uniform((1, out_channels, fan_in), fan_in, self.init)[0].view(layer.weight.shape))
            layer.bias.copy_(_uniform((1, 1, out_channels, 1, 1), fan_in, self.init).view(-1))
        return layer


# (layer index, (out, in)) -> (algorithm, its run generator)
AlgorithmMaker = Callable[[int, tuple[int, int]], tuple[AnalogAlgorithm, torch.Generator]]


class AnalogLayers:
    """Analog tiles: each layer gets its own algorithm (and arrays) from ``make_algorithm``."""

    def __init__(self, make_algorithm: AlgorithmMaker, io: Any, init_generator: torch.Generator,
                 population: int = 1) -> None:
        self.make_algorithm = make_algorithm
        self.io = io
        self.init = init_generator
        self.population = population
        self.count = 0  # layers made so far: the next layer's index

    def _algorithm(self, shape: tuple[int, int]) -> tuple[AnalogAlgorithm, torch.Generator]:
        self.count += 1
        return self.make_algorithm(self.count - 1, shape)

    def linear(self, n_in: int, n_out: int, init_fan_in: int | None = None) -> nn.Module:
        algorithm, run = self._algorithm((n_out, n_in))
        return AnalogLinear(n_in, n_out, algorithm, self.io, run, self.init, init_fan_in=init_fan_in)

    def conv2d(self, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
        algorithm, run = self._algorithm((out_channels, in_channels * kernel_size * kernel_size))
        return AnalogConv2d(in_channels, out_channels, kernel_size, algorithm, self.io, run, self.init)

